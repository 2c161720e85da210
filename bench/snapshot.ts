/**
 * P5 — snapshots: creation time for a 1 GiB and a 16 GiB disk (target < 100
 * ms whatever the disk size), and space used after N snapshots with 1% of the
 * blocks changed between them (target: proportional to the changed blocks).
 * The staging volume is the real one (log segments in a local-directory
 * store on this machine's ext4); the baseline is a full copy of the disk's
 * stored data (what a snapshot costs without redirect-on-write or reflink).
 *
 *   node bench/snapshot.ts [--rounds N]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalDirectoryStore } from "../src/replicator/store/local-directory-store.ts";
import { StagingVolume } from "../src/replicator/volume.ts";
import { blockHashes } from "../src/wire/index.ts";
import { GiB, MiB, ratio, timed } from "./support.ts";

const BS = 64 * 1024;
const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1] || 10) || 10;
const filler = randomFillSync(Buffer.alloc(4 * MiB));
let stamp = 0;

/** `n` blocks of fresh data (each unique) as one buffer. */
function fresh(n: number): Buffer {
  const b = Buffer.from(filler.subarray(0, n * BS));
  for (let i = 0; i < n; i++) b.writeDoubleLE(++stamp, i * BS);
  return b;
}

async function storedBytes(store: LocalDirectoryStore, prefix: string): Promise<number> {
  return (await store.list(prefix)).reduce((a, o) => a + o.size, 0);
}

interface Result {
  diskSize: number;
  written: number;
  snapshotMs: number[];
  tinySnapshotMs: number;
  changedPerRound: number;
  storedAfterInitial: number;
  storedAfterRounds: number;
  openMs: number;
  copyBaselineSeconds: number | null;
}

/** A disk of `diskSize` bytes, every `every`-th block written with data at first. */
async function run(diskSize: number, every: number, dir: string, copyBaseline: boolean): Promise<Result> {
  const store = new LocalDirectoryStore(dir);
  const vol = await StagingVolume.open(store, "s-benchsnapshot0000", "disk0");
  await vol.startGeneration({
    generationId: "aa".repeat(16),
    diskSize,
    logicalBlockSize: 512,
    hashBlockSize: BS,
  });
  const blocks = diskSize / BS;
  let written = 0;
  const perWrite = (4 * MiB) / BS;
  for (let b = 0; b < blocks; b += perWrite) {
    const n = Math.min(perWrite, blocks - b);
    if (every === 1) {
      const data = fresh(n);
      await vol.writeData(b * BS, data, blockHashes(data, BS));
      written += data.length;
    } else {
      for (let i = b; i < b + n; i += every) {
        const data = fresh(1);
        await vol.writeData(i * BS, data, blockHashes(data, BS));
        written += BS;
      }
    }
    if ((b / perWrite) % 64 === 0) await vol.flush();
  }
  await vol.flush({ initialSyncComplete: true });
  await vol.snapshot({ barrierId: 1, reason: "initial-sync" });
  const storedAfterInitial = await storedBytes(store, "volumes/");

  let copyBaselineSeconds: number | null = null;
  if (copyBaseline) {
    const seg = (await store.list("volumes/s-benchsnapshot0000/disk0/seg/"))[0]!;
    const t = await timed("cp", ["--reflink=never", join(dir, seg.key), join(dir, "baseline-copy")]);
    copyBaselineSeconds = t.seconds;
    await rm(join(dir, "baseline-copy"), { force: true });
  }

  const changed = Math.max(1, Math.round(blocks / 100));
  const snapshotMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < changed; i++) {
      const b = Math.floor(Math.random() * blocks);
      const data = fresh(1);
      await vol.writeData(b * BS, data, blockHashes(data, BS));
    }
    await vol.flush();
    const t0 = performance.now();
    await vol.snapshot({ barrierId: r + 2, reason: "policy" });
    snapshotMs.push(performance.now() - t0);
  }
  const storedAfterRounds = await storedBytes(store, "volumes/");
  const one = fresh(1);
  await vol.writeData(0, one, blockHashes(one, BS));
  await vol.flush();
  const t1 = performance.now();
  await vol.snapshot({ barrierId: rounds + 2, reason: "requested" });
  const tinySnapshotMs = performance.now() - t1;
  await vol.close();
  const t2 = performance.now();
  const again = await StagingVolume.open(store, "s-benchsnapshot0000", "disk0");
  const openMs = performance.now() - t2;
  await again.close();
  return {
    diskSize,
    written,
    snapshotMs,
    tinySnapshotMs,
    changedPerRound: changed * BS,
    storedAfterInitial,
    storedAfterRounds,
    openMs,
    copyBaselineSeconds,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

const work = await mkdtemp(join(tmpdir(), "ferry-bench-snapshot-"));
try {
  const results = [
    await run(1 * GiB, 1, join(work, "1g"), true),
    await run(16 * GiB, 8, join(work, "16g"), false),
  ];
  for (const r of results) {
    const added = r.storedAfterRounds - r.storedAfterInitial;
    const changedTotal = r.changedPerRound * rounds;
    process.stdout.write(
      `P5 snapshot, ${r.diskSize / GiB} GiB disk (${fmt(r.written)} of data written at first):\n` +
        `  snapshot after 1% changed: median ${median(r.snapshotMs).toFixed(1)} ms, max ${Math.max(...r.snapshotMs).toFixed(1)} ms over ${rounds}` +
        ` (target < 100 ms); after one changed block: ${r.tinySnapshotMs.toFixed(1)} ms\n` +
        `  space: ${fmt(r.storedAfterInitial)} after the initial sync; +${fmt(added)} after ${rounds} snapshots with 1% (${fmt(r.changedPerRound)}) changed between them` +
        ` = ${ratio(added, changedTotal)} of the changed bytes\n` +
        `  reopen (head index rebuilt from segment trailers): ${r.openMs.toFixed(0)} ms\n` +
        (r.copyBaselineSeconds !== null
          ? `  baseline, a full copy of the stored data (cp --reflink=never): ${(r.copyBaselineSeconds * 1000).toFixed(0)} ms` +
            ` — Ferry's snapshot is ${ratio(r.copyBaselineSeconds * 1000, median(r.snapshotMs))} faster\n`
          : ""),
    );
  }
  process.stdout.write(
    `JSON ${JSON.stringify(results.map((r) => ({ ...r, snapshotMedianMs: median(r.snapshotMs) })))}\n`,
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
