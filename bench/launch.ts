/**
 * P8: launch a 4 GiB snapshot as a raw image, against the sequential write
 * speed of this machine (`dd` of the same size, conv=fdatasync). The
 * snapshot holds data in every block (text and random, no zeros), so the
 * launch writes every byte, like dd; every block is read back through the
 * snapshot reader and checked against its recorded hash. A second reference,
 * `dd oflag=direct`, is the disk's write rate past the page cache (the
 * launch writes its image with O_DIRECT; buffered writes here cost far more
 * kernel time than the disk's own rate, so the P8 reference moves with load).
 *
 * BENCH_LAUNCH_CATALOG=store (default): the snapshot is a real staging
 * volume (segments written by StagingVolume in a LocalDirectoryStore, read by
 * StoreCatalog), as `ferry up` and `ferry server --staging-store` launch.
 * BENCH_LAUNCH_CATALOG=raw: the raw-image catalog of the launch tests.
 * BENCH_LAUNCH_SIZE=1G for a shorter run. Prints one JSON line at the end.
 */
import { mkdtemp, open, readdir, rm, stat } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createLauncher } from "../src/launch/index.ts";
import { parseSize } from "../src/lib/units.ts";
import type { SnapshotCatalog, SnapshotInfo } from "../src/model/staging.ts";
import { StoreCatalog, snapshotInfo } from "../src/replicator/snapshots.ts";
import { LocalDirectoryStore } from "../src/replicator/store/local-directory-store.ts";
import { StagingVolume } from "../src/replicator/volume.ts";
import { blockHashes } from "../src/wire/index.ts";
import { createRawImageCatalog } from "../test/support/raw-image-catalog.ts";
import { GiB, MiB, dropCaches, mbps, ratio, timed } from "./support.ts";

const SERVER = "s-0000000000000bench";
const HBS = 64 * 1024;
const size = parseSize(process.env.BENCH_LAUNCH_SIZE ?? "4G");
const mode = process.env.BENCH_LAUNCH_CATALOG === "raw" ? "raw" : "store";
const work = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), "ferry-bench-launch-"));

const text = Buffer.from(
  "2026-11-25T04:20:00Z host app[42]: GET /api/v1/items status=200\n".repeat(MiB / 64),
).subarray(0, MiB);
/** Every MiB is data: alternating log-like text and random bytes. */
function fillMiB(buf: Buffer, i: number): Buffer {
  return i % 2 ? randomFillSync(buf) : text;
}

/** A staging volume written as the replicator writes one, with one snapshot of all of it. */
async function storeSnapshot(): Promise<{ catalog: SnapshotCatalog; snap: SnapshotInfo; files: string[] }> {
  const root = join(work, "store");
  const store = new LocalDirectoryStore(root);
  const vol = await StagingVolume.open(store, SERVER, "vda");
  await vol.startGeneration({
    generationId: "be".repeat(16),
    diskSize: size,
    logicalBlockSize: 512,
    hashBlockSize: HBS,
  });
  const chunk = Buffer.alloc(4 * MiB);
  const mib = Buffer.alloc(MiB);
  let seq = 0;
  for (let off = 0, i = 0; off < size; off += chunk.length) {
    const n = Math.min(chunk.length, size - off);
    for (let at = 0; at < n; at += MiB, i++) fillMiB(mib, i).copy(chunk, at, 0, Math.min(MiB, n - at));
    const data = chunk.subarray(0, n);
    await vol.writeData(off, data, blockHashes(data, HBS));
    if (++seq % 64 === 0) await vol.flush({ durableSeq: seq });
  }
  await vol.flush({ durableSeq: seq, resumeOffset: size, initialSyncComplete: true });
  const m = await vol.snapshot({ barrierId: 1, reason: "requested" });
  await vol.close();
  const segDir = join(root, "volumes", SERVER, "vda", "seg");
  const files = (await readdir(segDir)).filter((f) => !f.endsWith(".open")).map((f) => join(segDir, f));
  return { catalog: new StoreCatalog(store), snap: snapshotInfo(m), files };
}

async function rawSnapshot(): Promise<{ catalog: SnapshotCatalog; snap: SnapshotInfo; files: string[] }> {
  const src = join(work, "source.img");
  const fh = await open(src, "w");
  const buf = Buffer.alloc(MiB);
  for (let off = 0, i = 0; off < size; off += MiB, i++) await fh.write(fillMiB(buf, i), 0, MiB, off);
  await fh.close();
  const catalog = createRawImageCatalog(join(work, "store"));
  const snap = await catalog.addSnapshot(SERVER, "vda", src);
  await rm(src);
  return { catalog, snap, files: [catalog.dataPath(snap)] };
}

try {
  const { catalog, snap, files } = mode === "store" ? await storeSnapshot() : await rawSnapshot();

  await dropCaches();
  const load = loadavg()[0]!;
  const dd = await timed("dd", [
    "if=/dev/zero",
    `of=${join(work, "dd.img")}`,
    "bs=4M",
    `count=${size / (4 * MiB)}`,
    "conv=fdatasync",
    "status=none",
  ]);
  await rm(join(work, "dd.img"));
  // The disk's own write rate, past the page cache (the launch writes its image with O_DIRECT).
  await dropCaches();
  const ddDirect = await timed("dd", [
    "if=/dev/zero",
    `of=${join(work, "dd.img")}`,
    "bs=4M",
    `count=${size / (4 * MiB)}`,
    "oflag=direct",
    "conv=fdatasync",
    "status=none",
  ]);
  await rm(join(work, "dd.img"));
  // A second reference: copying the snapshot's own data files (read and write on the same disk, no checks).
  await dropCaches();
  const copyOut = join(work, "copy.img");
  const copy = await timed("sh", ["-c", 'cat "$@" > "$0" && sync -d "$0"', copyOut, ...files]);
  await rm(copyOut);

  await dropCaches();
  const launcher = createLauncher({ dataDir: join(work, "launch"), catalog });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const out = await launcher.launch({
    jobID: "mgnjob-0000000000000bench",
    sourceServerID: SERVER,
    initiatedBy: "START_TEST",
    instanceId: "i-0000000000000bec1",
    replicating: false,
    launchConfiguration: { ferry: { target: "image" } },
    log: async () => {},
    signal: new AbortController().signal,
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const written = (await stat(out.details.disks[0]!.path)).blocks * 512;
  await launcher.close();

  const ddRate = mbps(size, dd.seconds);
  const ddDirectRate = mbps(size, ddDirect.seconds);
  const copyRate = mbps(size, copy.seconds);
  const launchRate = mbps(size, seconds);
  process.stdout.write(
    [
      `snapshot ${snap.snapshotId} (${mode} catalog): ${(size / GiB).toFixed(1)} GiB, every block data (verified reads)`,
      `dd if=/dev/zero bs=4M conv=fdatasync : ${dd.seconds.toFixed(2)} s  ${ddRate.toFixed(0)} MB/s`,
      `dd … oflag=direct conv=fdatasync     : ${ddDirect.seconds.toFixed(2)} s  ${ddDirectRate.toFixed(0)} MB/s`,
      `copy of the snapshot's data files    : ${copy.seconds.toFixed(2)} s  ${copyRate.toFixed(0)} MB/s`,
      `ferry launch (image target, raw)     : ${seconds.toFixed(2)} s  ${launchRate.toFixed(0)} MB/s  (${(written / GiB).toFixed(2)} GiB allocated; CPU user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s)`,
      `P8 launch / sequential write = ${ratio(launchRate, ddRate)} (target ≥ 0.80); launch / direct write = ${ratio(launchRate, ddDirectRate)}; launch / copy = ${ratio(launchRate, copyRate)}`,
      JSON.stringify({
        bench: "launch",
        mode,
        bytes: size,
        loadavg1: load,
        ddMBps: Math.round(ddRate),
        ddDirectMBps: Math.round(ddDirectRate),
        copyMBps: Math.round(copyRate),
        launchMBps: Math.round(launchRate),
        launchSeconds: Number(seconds.toFixed(2)),
        cpuUserSeconds: Number((cpu.user / 1e6).toFixed(2)),
        cpuSystemSeconds: Number((cpu.system / 1e6).toFixed(2)),
        ratio: Number((launchRate / ddRate).toFixed(2)),
        ratioDirect: Number((launchRate / ddDirectRate).toFixed(2)),
      }),
      "",
    ].join("\n"),
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
