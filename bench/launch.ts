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
 * The reference swings by half within minutes on these VMs, so each run
 * measures the `dd` write immediately before and immediately after its
 * launch and takes their mean; the P8 figure is the median ratio over the
 * runs (`--runs N`, default 3).
 *
 * `--staging DIR` puts the staging store on DIR (e.g. /dev/shm standing in
 * for a separate staging volume: in MGN the staging volumes and the launched
 * instance's volumes are different EBS volumes); `same` (the default) keeps
 * it on the image's disk. Repeat it to measure several cases in one go
 * (`--staging same --staging /dev/shm`); each is labelled. The image, dd's
 * file and the copy are written in BENCH_DIR (default the temp directory).
 *
 * BENCH_LAUNCH_CATALOG=store (default): the snapshot is a real staging
 * volume (segments written by StagingVolume in a LocalDirectoryStore, read by
 * StoreCatalog), as `ferry up` and `ferry server --staging-store` launch.
 * BENCH_LAUNCH_CATALOG=raw: the raw-image catalog of the launch tests.
 * BENCH_LAUNCH_SIZE=1G for a shorter run. Prints one JSON line per run and a
 * summary line per case.
 */
import { mkdir, mkdtemp, open, readFile, readdir, rm, stat } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createLauncher } from "../src/launch/index.ts";
import { parseSize } from "../src/lib/units.ts";
import type { SnapshotCatalog, SnapshotInfo } from "../src/model/staging.ts";
import { StoreCatalog, snapshotInfo } from "../src/replicator/snapshots.ts";
import { LocalDirectoryStore } from "../src/replicator/store/local-directory-store.ts";
import { StagingVolume } from "../src/replicator/volume.ts";
import { blockHashes } from "../src/wire/index.ts";
import { createRawImageCatalog } from "../test/support/raw-image-catalog.ts";
import { GiB, MiB, dropCaches, mbps, median, ratio, timed } from "./support.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    staging: { type: "string", multiple: true },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs ${values.runs}: give 1–50`);
const stagings = values.staging?.length ? values.staging : ["same"];

const SERVER = "s-0000000000000bench";
const HBS = 64 * 1024;
const size = parseSize(process.env.BENCH_LAUNCH_SIZE ?? "4G");
const mode = process.env.BENCH_LAUNCH_CATALOG === "raw" ? "raw" : "store";
const work = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), "ferry-bench-launch-"));

interface Snapshot {
  catalog: SnapshotCatalog;
  snap: SnapshotInfo;
  files: string[];
}

const text = Buffer.from(
  "2026-11-25T04:20:00Z host app[42]: GET /api/v1/items status=200\n".repeat(MiB / 64),
).subarray(0, MiB);
/** Every MiB is data: alternating log-like text and random bytes. */
function fillMiB(buf: Buffer, i: number): Buffer {
  return i % 2 ? randomFillSync(buf) : text;
}

/** A staging volume written as the replicator writes one, with one snapshot of all of it. */
async function storeSnapshot(root: string): Promise<Snapshot> {
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

async function rawSnapshot(root: string): Promise<Snapshot> {
  const src = join(root, "source.img");
  const fh = await open(src, "w");
  const buf = Buffer.alloc(MiB);
  for (let off = 0, i = 0; off < size; off += MiB, i++) await fh.write(fillMiB(buf, i), 0, MiB, off);
  await fh.close();
  const catalog = createRawImageCatalog(join(root, "store"));
  const snap = await catalog.addSnapshot(SERVER, "vda", src);
  await rm(src);
  return { catalog, snap, files: [catalog.dataPath(snap)] };
}

/** `dd` of zeros, the size of the snapshot, into BENCH_DIR, caches dropped first. */
async function ddWrite(direct: boolean): Promise<number> {
  await dropCaches();
  const out = join(work, "dd.img");
  const r = await timed("dd", [
    "if=/dev/zero",
    `of=${out}`,
    "bs=4M",
    `count=${size / (4 * MiB)}`,
    ...(direct ? ["oflag=direct"] : []),
    "conv=fdatasync",
    "status=none",
  ]);
  await rm(out);
  return mbps(size, r.seconds);
}

/** CPU seconds of this process's main thread so far (Linux; NaN elsewhere). */
async function mainThreadCpu(): Promise<{ user: number; system: number }> {
  try {
    const raw = await readFile(`/proc/self/task/${process.pid}/stat`, "utf8");
    const f = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
    return { user: Number(f[11]) / 100, system: Number(f[12]) / 100 }; // clock ticks (USER_HZ = 100)
  } catch {
    return { user: NaN, system: NaN };
  }
}

/** Where a directory lives: its device and filesystem type. */
async function deviceOf(dir: string): Promise<string> {
  const r = await timed("df", ["--output=source,fstype", dir]).catch(() => undefined);
  return r?.stdout.trim().split("\n")[1]?.trim().replace(/\s+/, " ") ?? "?";
}

interface RunFigures {
  at: string;
  load: number;
  ddBefore: number;
  ddAfter: number;
  ddDirect: number;
  copy: number;
  launch: number;
  seconds: number;
  ratio: number;
}

async function runOnce(s: Snapshot, label: string, run: number): Promise<RunFigures> {
  const at = new Date().toISOString().slice(11, 19);
  const load = loadavg()[0]!;
  const ddDirect = await ddWrite(true);
  // A second reference: copying the snapshot's own data files (no checks).
  await dropCaches();
  const copyOut = join(work, "copy.img");
  const copy = await timed("sh", ["-c", 'cat "$@" > "$0" && sync -d "$0"', copyOut, ...s.files]);
  await rm(copyOut);

  const ddBefore = await ddWrite(false);
  await dropCaches();
  const dataDir = join(work, `launch-${run}`);
  const launcher = createLauncher({ dataDir, catalog: s.catalog });
  const cpu0 = process.cpuUsage();
  const main0 = await mainThreadCpu();
  const t0 = performance.now();
  const out = await launcher.launch({
    jobID: "mgnjob-0000000000000bench",
    sourceServerID: SERVER,
    initiatedBy: "START_TEST",
    instanceId: `i-${(0xbec1 + run).toString(16).padStart(17, "0")}`,
    replicating: false,
    launchConfiguration: { ferry: { target: "image" } },
    log: async () => {},
    signal: new AbortController().signal,
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const main1 = await mainThreadCpu();
  const written = (await stat(out.details.disks[0]!.path)).blocks * 512;
  await launcher.close();
  await rm(dataDir, { recursive: true, force: true });
  const ddAfter = await ddWrite(false);

  const ddMean = (ddBefore + ddAfter) / 2;
  const launch = mbps(size, seconds);
  const copyRate = mbps(size, copy.seconds);
  const mainUser = main1.user - main0.user;
  const mainSystem = main1.system - main0.system;
  process.stdout.write(
    [
      `[${label}] run ${run}/${runs} at ${at} UTC, load ${load.toFixed(2)}`,
      `  dd if=/dev/zero bs=4M conv=fdatasync : before ${ddBefore.toFixed(0)} MB/s, after ${ddAfter.toFixed(0)} MB/s, mean ${ddMean.toFixed(0)} MB/s`,
      `  dd … oflag=direct conv=fdatasync     : ${ddDirect.toFixed(0)} MB/s`,
      `  copy of the snapshot's data files    : ${copyRate.toFixed(0)} MB/s`,
      `  ferry launch (image target, raw)     : ${seconds.toFixed(2)} s  ${launch.toFixed(0)} MB/s  (${(written / GiB).toFixed(2)} GiB allocated; CPU user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s; main thread user ${mainUser.toFixed(2)} s, system ${mainSystem.toFixed(2)} s)`,
      `  P8 launch / mean sequential write = ${ratio(launch, ddMean)} (target ≥ 0.80); launch / direct write = ${ratio(launch, ddDirect)}; launch / copy = ${ratio(launch, copyRate)}`,
      JSON.stringify({
        bench: "launch",
        staging: label,
        mode,
        run,
        at,
        bytes: size,
        loadavg1: load,
        ddBeforeMBps: Math.round(ddBefore),
        ddAfterMBps: Math.round(ddAfter),
        ddMBps: Math.round(ddMean),
        ddDirectMBps: Math.round(ddDirect),
        copyMBps: Math.round(copyRate),
        launchMBps: Math.round(launch),
        launchSeconds: Number(seconds.toFixed(2)),
        cpuUserSeconds: Number((cpu.user / 1e6).toFixed(2)),
        cpuSystemSeconds: Number((cpu.system / 1e6).toFixed(2)),
        mainThreadUserSeconds: Number(mainUser.toFixed(2)),
        mainThreadSystemSeconds: Number(mainSystem.toFixed(2)),
        ratio: Number((launch / ddMean).toFixed(2)),
        ratioDirect: Number((launch / ddDirect).toFixed(2)),
      }),
      "",
    ].join("\n"),
  );
  return { at, load, ddBefore, ddAfter, ddDirect, copy: copyRate, launch, seconds, ratio: launch / ddMean };
}

const summary: string[] = [];
try {
  for (const where of stagings) {
    const root = where === "same" ? join(work, "store") : await mkdtemp(join(where, "ferry-bench-staging-"));
    try {
      const label =
        where === "same"
          ? `staging on the image's disk (${await deviceOf(work)})`
          : `staging on ${where} (${await deviceOf(root)}), image on ${await deviceOf(work)}`;
      await mkdir(root, { recursive: true });
      const s = mode === "store" ? await storeSnapshot(root) : await rawSnapshot(root);
      process.stdout.write(
        `\n== ${label}: snapshot ${s.snap.snapshotId} (${mode} catalog), ${(size / GiB).toFixed(1)} GiB, every block data (verified reads) ==\n`,
      );
      const figures: RunFigures[] = [];
      for (let run = 1; run <= runs; run++) figures.push(await runOnce(s, label, run));
      const ratios = figures.map((f) => f.ratio);
      summary.push(
        `[${label}] P8 median launch / mean(dd before, dd after) over ${runs} runs = ${median(ratios).toFixed(2)} (runs ${ratios.map((r) => r.toFixed(2)).join(", ")}); launch ${figures.map((f) => f.launch.toFixed(0)).join(", ")} MB/s`,
        JSON.stringify({
          bench: "launch-summary",
          staging: label,
          mode,
          bytes: size,
          runs,
          medianRatio: Number(median(ratios).toFixed(2)),
          ratios: ratios.map((r) => Number(r.toFixed(2))),
          launchMBps: figures.map((f) => Math.round(f.launch)),
          medianLaunchMBps: Math.round(median(figures.map((f) => f.launch))),
        }),
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }
  process.stdout.write(`\n${summary.join("\n")}\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}
