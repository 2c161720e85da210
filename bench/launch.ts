/**
 * P8: launch a 4 GiB snapshot as a raw image, against the sequential write
 * speed of the disk the image goes to. The snapshot holds data in every block
 * (text and random, no zeros), so the launch writes every byte; every block
 * is read back through the snapshot reader and checked against its recorded
 * hash.
 *
 * The reference is `dd if=/dev/zero oflag=direct bs=4M conv=fdatasync` of the
 * same size, measured right before and right after each launch (their mean;
 * the disk's rate moves within minutes on these VMs). Not a `dd` through the
 * page cache: on this VM its rate is set by the guest's memory, not the disk.
 * Memory freed and left idle for a few seconds is handed back to the host
 * (the balloon device's free page reporting), and the next buffered `dd`
 * spends up to 5× the kernel time faulting it back (4 GiB: 2.7 s of kernel
 * CPU right after another `dd`, 12.6 s after 20 s idle). That `dd` is still
 * printed, with its kernel CPU, and so is a raw copy (`dd iflag=direct
 * oflag=direct`) of a same-size file from the staging side: what the two
 * devices give a copy with no checks. The P8 figure is the median ratio over
 * the runs (`--runs N`, default 3).
 *
 * `--staging DIR` puts the staging store on DIR; `same` keeps it on the
 * image's disk. In MGN the staging volumes and a launched instance's volumes
 * are different volumes, and so are a Ferry server's staging store and launch
 * directory when it has two disks; on one disk a launch reads and writes the
 * same device and shares its rate. Repeatable; the default is `same` and, when
 * it exists, /dev/shm (tmpfs standing in for a separate staging device). The
 * image, dd's files and the copy are written in BENCH_DIR (default the temp
 * directory).
 *
 * BENCH_LAUNCH_CATALOG=store (default): the snapshot is a real staging
 * volume (segments written by StagingVolume in a LocalDirectoryStore, read by
 * StoreCatalog), as `ferry up` and `ferry server --staging-store` launch.
 * BENCH_LAUNCH_CATALOG=raw: the raw-image catalog of the launch tests.
 * BENCH_LAUNCH_SIZE=1G for a shorter run. Prints one JSON line per run and a
 * summary line per case.
 */
import { mkdir, mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { existsSync } from "node:fs";
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
import { GiB, MiB, dropCaches, mbps, median, ratio, timed, timedWithUsage } from "./support.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    staging: { type: "string", multiple: true },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs ${values.runs}: give 1–50`);
const stagings = values.staging?.length
  ? values.staging
  : ["same", ...(existsSync("/dev/shm") ? ["/dev/shm"] : [])];

const SERVER = "s-0000000000000bench";
const HBS = 64 * 1024;
const size = parseSize(process.env.BENCH_LAUNCH_SIZE ?? "4G");
const mode = process.env.BENCH_LAUNCH_CATALOG === "raw" ? "raw" : "store";
const work = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), "ferry-bench-launch-"));

interface Snapshot {
  catalog: SnapshotCatalog;
  snap: SnapshotInfo;
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
  return { catalog: new StoreCatalog(store), snap: snapshotInfo(m) };
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
  return { catalog, snap };
}

interface DdFigures {
  mbps: number;
  /** dd's own kernel CPU seconds. */
  sys: number;
}

/** `dd` with bs=4M and conv=fdatasync, caches dropped first; `out` is removed after. */
async function dd(args: string[], out: string): Promise<DdFigures> {
  await dropCaches();
  const r = await timedWithUsage("dd", [...args, `of=${out}`, "bs=4M", "conv=fdatasync", "status=none"]);
  await rm(out);
  return { mbps: mbps(size, r.seconds), sys: r.sysSeconds };
}

/** `dd` of zeros, the size of the snapshot, into BENCH_DIR (`oflag=direct` or through the page cache). */
function ddWrite(direct: boolean): Promise<DdFigures> {
  const args = ["if=/dev/zero", `count=${size / (4 * MiB)}`, ...(direct ? ["oflag=direct"] : [])];
  return dd(args, join(work, "dd.img"));
}

/** The same-size file on the staging side that the raw copy reads. */
async function writeCopySource(root: string): Promise<string> {
  const src = join(root, "copy-source.img");
  await timed("dd", [
    "if=/dev/zero",
    `of=${src}`,
    "bs=4M",
    `count=${size / (4 * MiB)}`,
    "oflag=direct",
    "status=none",
  ]);
  return src;
}

/**
 * The raw copy: `dd iflag=direct oflag=direct` of a same-size file from the
 * staging side to the image's directory — what the two devices give a copy
 * with no checks and no page cache (on one disk, its reads and writes share it).
 */
function rawCopy(src: string): Promise<DdFigures> {
  return dd([`if=${src}`, "iflag=direct", "oflag=direct"], join(work, "copy.img"));
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

/** What the summary of a case needs from each run. */
interface RunFigures {
  launch: number;
  /** P8: launch ÷ mean of the O_DIRECT writes before and after it. */
  ratio: number;
  ratioCopy: number;
}

const fmt = (d: DdFigures): string => `${d.mbps.toFixed(0)} MB/s (dd kernel CPU ${d.sys.toFixed(1)} s)`;

async function runOnce(s: Snapshot, copySource: string, label: string, run: number): Promise<RunFigures> {
  const at = new Date().toISOString().slice(11, 19);
  const load = loadavg()[0]!;
  const copy = await rawCopy(copySource);
  const buffered = await ddWrite(false);
  const directBefore = await ddWrite(true);
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
  const directAfter = await ddWrite(true);

  const reference = (directBefore.mbps + directAfter.mbps) / 2;
  const launch = mbps(size, seconds);
  const mainUser = main1.user - main0.user;
  const mainSystem = main1.system - main0.system;
  process.stdout.write(
    [
      `[${label}] run ${run}/${runs} at ${at} UTC, load ${load.toFixed(2)}`,
      `  dd if=/dev/zero oflag=direct (sequential write) : before ${fmt(directBefore)}, after ${fmt(directAfter)}; mean ${reference.toFixed(0)} MB/s`,
      `  dd if=/dev/zero through the page cache         : ${fmt(buffered)}`,
      `  dd iflag=direct oflag=direct, staging → image  : ${fmt(copy)}`,
      `  ferry launch (image target, raw)               : ${seconds.toFixed(2)} s  ${launch.toFixed(0)} MB/s  (${(written / GiB).toFixed(2)} GiB allocated; CPU user ${(cpu.user / 1e6).toFixed(1)} s, system ${(cpu.system / 1e6).toFixed(1)} s; main thread user ${mainUser.toFixed(2)} s, system ${mainSystem.toFixed(2)} s)`,
      `  P8 launch / sequential write = ${ratio(launch, reference)} (target ≥ 0.80); launch / raw copy = ${ratio(launch, copy.mbps)}; launch / page-cache write = ${ratio(launch, buffered.mbps)}`,
      JSON.stringify({
        bench: "launch",
        staging: label,
        mode,
        run,
        at,
        bytes: size,
        loadavg1: load,
        ddDirectBeforeMBps: Math.round(directBefore.mbps),
        ddDirectAfterMBps: Math.round(directAfter.mbps),
        ddDirectMBps: Math.round(reference),
        ddBufferedMBps: Math.round(buffered.mbps),
        ddBufferedSysSeconds: buffered.sys,
        rawCopyMBps: Math.round(copy.mbps),
        launchMBps: Math.round(launch),
        launchSeconds: Number(seconds.toFixed(2)),
        cpuUserSeconds: Number((cpu.user / 1e6).toFixed(2)),
        cpuSystemSeconds: Number((cpu.system / 1e6).toFixed(2)),
        mainThreadUserSeconds: Number(mainUser.toFixed(2)),
        mainThreadSystemSeconds: Number(mainSystem.toFixed(2)),
        ratio: Number((launch / reference).toFixed(2)),
        ratioRawCopy: Number((launch / copy.mbps).toFixed(2)),
      }),
      "",
    ].join("\n"),
  );
  return { launch, ratio: launch / reference, ratioCopy: launch / copy.mbps };
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
      const copySource = await writeCopySource(root);
      for (let run = 1; run <= runs; run++) figures.push(await runOnce(s, copySource, label, run));
      const ratios = figures.map((f) => f.ratio);
      const copyRatios = figures.map((f) => f.ratioCopy);
      summary.push(
        `[${label}] P8 median launch / sequential write over ${runs} runs = ${median(ratios).toFixed(2)} (runs ${ratios.map((r) => r.toFixed(2)).join(", ")}); launch ${figures.map((f) => f.launch.toFixed(0)).join(", ")} MB/s; launch / raw copy median ${median(copyRatios).toFixed(2)}`,
        JSON.stringify({
          bench: "launch-summary",
          staging: label,
          mode,
          bytes: size,
          runs,
          medianRatio: Number(median(ratios).toFixed(2)),
          ratios: ratios.map((r) => Number(r.toFixed(2))),
          medianRatioRawCopy: Number(median(copyRatios).toFixed(2)),
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
