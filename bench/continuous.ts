/**
 * P3 and P6: continuous replication lag on a mounted ext4 under sustained
 * random writes (fio, 20 MB/s), with the eBPF tracker and, for comparison, the
 * scan tracker; agent CPU and peak RSS, and its CPU when idle.
 *
 * Lag is measured end to end: every 250 ms a marker (a counter and random
 * bytes, 4 KiB) is written to a file and fdatasync'ed on the source; the
 * benchmark follows the files of the replicator's staging store as they grow
 * (its volumes are append-only logs of segments) and records how long the
 * marker's bytes took to appear there. The agent runs with `--compression
 * none` so that the marker's bytes are stored as they are.
 *
 *   node bench/continuous.ts [--seconds 60] [--rate 20m] [--trackers ebpf,scan] [--block-size N]
 *        [--agent-node-options=...] [--loop-direct-io] [--iodepth N] [--fresh-file] [--staging DIR] [--json]
 *
 * The agent runs through bin/ferry, which sets its young generation
 * (`--max-semi-space-size=2`); `FERRY_AGENT_NODE_FLAGS=` (empty) in the
 * environment runs it with V8's defaults. `--loop-direct-io` makes the loop
 * device bypass the page cache for its image file (closer to a real disk, but
 * fio at queue depth 1 then reaches only ~13 MB/s here; `--iodepth 8` keeps
 * 8 writes in flight with libaio, as a database or a page-cache flush does).
 *
 * It also reports the tracker's gaps (each a rescan) and placed misses from
 * the agent's log, the CPU of the agent, its tracer (bpftrace), the replicator
 * and this process (the lag probe: all share the CPUs), the largest backlog,
 * and the agent's memory at its highest RSS (main thread: V8 heap reserved and
 * used, external, array buffers).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, readFile, readdir, rm, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { isRoot, timed } from "./support.ts";

const FERRY = join(import.meta.dirname, "..", "bin", "ferry");
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    rate: { type: "string", default: "20m" },
    trackers: { type: "string", default: "ebpf,scan" },
    "block-size": { type: "string", default: "65536" },
    dir: { type: "string", default: "/var/tmp/ferry-bench/continuous" },
    json: { type: "boolean", default: false },
    /** Extra Node options for the agent only (e.g. "--max-semi-space-size=4"). */
    "agent-node-options": { type: "string", default: "" },
    /** The loop device reads and writes its image file with O_DIRECT (like a disk; no second page cache). */
    "loop-direct-io": { type: "boolean", default: false },
    /** Leave fio.dat to fio (fallocated: the first write to each block also converts its ext4 extent). */
    "fresh-file": { type: "boolean", default: false },
    /** Where the replicator keeps its staging store (default: beside the source disk's image). */
    staging: { type: "string" },
    /** fio's queue depth: 1 is psync (one write at a time), more is libaio with that many in flight. */
    iodepth: { type: "string", default: "1" },
  },
});
if (!isRoot()) {
  console.error("bench/continuous needs root (loop device, mount, eBPF)");
  process.exit(1);
}
const seconds = Number(values.seconds);
const iodepth = Number(values.iodepth);
if (!Number.isInteger(iodepth) || iodepth < 1 || iodepth > 256) {
  console.error(`--iodepth must be a whole number from 1 to 256, not ${values.iodepth}`);
  process.exit(2);
}
const dir = values.dir!;

function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function cpuSeconds(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/stat`, "utf8").then((t) => {
    const f = t.slice(t.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  });
}

/** The first child of `pid` running `comm`, if any. */
async function childPid(pid: number, comm: string): Promise<number | undefined> {
  const kids = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  for (const k of kids.split(" ").filter(Boolean)) {
    const name = await readFile(`/proc/${k}/comm`, "utf8").catch(() => "");
    if (name.trim() === comm) return Number(k);
  }
  return undefined;
}

async function peakRssMiB(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
}

/**
 * Loaded into the agent (NODE_OPTIONS=--import): appends process.memoryUsage()
 * to $FERRY_BENCH_MEMLOG every second, so the peak RSS can be broken down
 * into the V8 heap (reserved and used), external memory and array buffers.
 */
const MEMLOG_SOURCE = `
import { appendFileSync } from "node:fs";
import { isMainThread } from "node:worker_threads";
const file = process.env.FERRY_BENCH_MEMLOG;
// Worker threads load it too: their heaps are not the main thread's.
if (file && isMainThread) {
  setInterval(() => {
    const m = process.memoryUsage();
    appendFileSync(file, JSON.stringify({ t: Date.now(), ...m }) + "\\n");
  }, 1000).unref();
}`;
const MEMLOG_URL = `data:text/javascript;base64,${Buffer.from(MEMLOG_SOURCE).toString("base64")}`;

/**
 * The disk's own stalls, measured beside the load: a 4 KiB O_DIRECT read of the source disk's
 * image file (the disk under the loop device and the staging store) every 100 ms, from its own
 * process; prints "start-time-ms latency-ms" lines. A marker late by a stall of the disk
 * itself is not the pipeline's delay.
 */
const DISK_PROBE_SOURCE = `
const { openSync, readSync, constants } = require("node:fs");
const fd = openSync(process.argv[1], constants.O_RDONLY | constants.O_DIRECT);
const slab = Buffer.allocUnsafeSlow(3 * 4096);
let off = 0;
for (; off < 4096; off += 16) { try { readSync(fd, slab, off, 4096, 0); break; } catch {} }
const buf = slab.subarray(off, off + 4096);
const blocks = Math.max(1, Math.floor(Number(process.argv[2]) / 4096));
const tick = () => {
  const at = Date.now();
  const t = performance.now();
  readSync(fd, buf, 0, 4096, Math.floor(Math.random() * blocks) * 4096);
  process.stdout.write(at + " " + (performance.now() - t).toFixed(1) + "\\n");
  setTimeout(tick, 100);
};
tick();`;

interface MemorySample {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** The sample with the highest RSS from `from` (ms since the epoch) on, in MiB. */
async function memoryAtPeak(file: string, from = 0): Promise<Record<string, number> | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  let peak: MemorySample | undefined;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const m = JSON.parse(line) as MemorySample;
    if (m.t >= from && (!peak || m.rss > peak.rss)) peak = m;
  }
  if (!peak) return undefined;
  const mib = (x: number) => Math.round(x / 1048576);
  return {
    rssMiB: mib(peak.rss),
    heapTotalMiB: mib(peak.heapTotal),
    heapUsedMiB: mib(peak.heapUsed),
    externalMiB: mib(peak.external),
    arrayBuffersMiB: mib(peak.arrayBuffers),
  };
}

function jsonLines(child: ChildProcess, onLine: (v: Record<string, unknown>) => void): void {
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
  });
}

/**
 * Follows every file under a directory as it grows and finds byte patterns in
 * what was appended (with an overlap, so a pattern cut between two reads is
 * found). Layout-agnostic: it relies only on the replicator appending the
 * bytes it receives somewhere under its data directory.
 */
class AppendFollower {
  private readonly dir: string;
  /**
   * By inode, not by name: the store renames a segment when it seals it (`….open` → its final
   * name), and reading the renamed file again from its start (~300 MB at 20 MB/s of 4 KiB
   * writes) took the probe a second or more, every time a segment was sealed. The key is the
   * inode of the file actually opened (fstat), and its handle stays open, so no other file can
   * take that inode number while it is a key here. (Keyed by a `stat` of the name before
   * opening it, a file renamed over that name in between — the store writes some files to a
   * temporary name and renames them into place — left a key whose handle read another file;
   * once the first file was deleted, its inode number could go to a new segment, and the
   * probe read the wrong file for it and never saw the markers in it.) A file missing from
   * the directory for two passes is let go; its inode number may then be reused, by a file
   * this follower will read from its start.
   */
  private readonly files = new Map<number, { fh: FileHandle; pos: number; tail: Buffer; missed: number }>();
  private readonly buf = Buffer.alloc(4 * 1024 * 1024);
  constructor(dir: string) {
    this.dir = dir;
  }
  /** What this follower has read of `path`'s inode: its position, and the file's size now. */
  async state(path: string): Promise<{ ino: number; size: number; followedTo: number | null } | undefined> {
    const st = await stat(path).catch(() => undefined);
    if (!st) return undefined;
    return { ino: st.ino, size: st.size, followedTo: this.files.get(st.ino)?.pos ?? null };
  }
  async contains(pattern: Buffer): Promise<boolean> {
    let found = false;
    const entries = await readdir(this.dir, { recursive: true }).catch(() => undefined);
    if (!entries) return false;
    const seen = new Set<number>();
    for (const rel of entries) {
      const path = join(this.dir, rel);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      let f = this.files.get(st.ino);
      if (!f) {
        // Temporary files come and go (written, then renamed into place).
        const fh = await open(path, "r").catch(() => undefined);
        if (!fh) continue;
        const ino = (await fh.stat()).ino;
        seen.add(ino);
        f = this.files.get(ino);
        if (f) await fh.close();
        else {
          f = { fh, pos: 0, tail: Buffer.alloc(0), missed: 0 };
          this.files.set(ino, f);
        }
      }
      seen.add(st.ino);
      for (;;) {
        const buf = this.buf;
        const { bytesRead } = await f.fh.read(buf, 0, buf.length, f.pos);
        if (bytesRead === 0) break;
        f.pos += bytesRead;
        const chunk = Buffer.concat([f.tail, buf.subarray(0, bytesRead)]);
        if (chunk.includes(pattern)) found = true;
        f.tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - pattern.length)));
      }
    }
    // Files gone from the directory for two passes are let go (one pass can miss a file renamed
    // while it ran): their handles would pile up, as a head record is rewritten with every flush.
    for (const [ino, f] of this.files) {
      if (seen.has(ino)) f.missed = 0;
      else if (++f.missed >= 2) {
        await f.fh.close();
        this.files.delete(ino);
      }
    }
    return found;
  }
  async close(): Promise<void> {
    for (const f of this.files.values()) await f.fh.close();
  }
}

interface SlowMarker {
  n: number;
  /** When it was written, ms since the load began. */
  at: number;
  /** Whether it was in the staging files when the fresh read began (then the lag probe had missed it). */
  inStagingFiles: boolean;
  freshLookMs: number;
  /** The agent's last reported backlog. */
  agentBacklogBytes: number;
  /** Where the fresh read found it, and that file's size and how far the lag probe had read it, when the fresh read began. */
  file?: string;
  probeState?: { ino: number; size: number; followedTo: number | null };
}

/**
 * Reads every staging file from its start up to the size it had when this
 * began, looking for `pattern`: found means the marker was in the files at
 * that moment (while the probe had not seen it), not that it arrived during
 * this read (~3 s for ~3 GB).
 */
async function freshLook(
  staging: string,
  follower: AppendFollower,
  pattern: Buffer,
  n: number,
  at: number,
  agentBacklogBytes: number,
): Promise<SlowMarker> {
  const t0 = performance.now();
  const files: { path: string; size: number }[] = [];
  for (const rel of await readdir(staging, { recursive: true }).catch(() => [] as string[])) {
    const path = join(staging, rel);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile()) files.push({ path, size: st.size });
  }
  const states = await Promise.all(files.map((f) => follower.state(f.path)));
  let file: string | undefined;
  let probeState: SlowMarker["probeState"];
  const buf = Buffer.alloc(4 * 1024 * 1024);
  for (const [i, f] of files.entries()) {
    const fh = await open(f.path, "r").catch(() => undefined);
    if (!fh) continue; // a temporary file, renamed since
    try {
      let tail = Buffer.alloc(0);
      for (let pos = 0; pos < f.size && !file;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, f.size - pos), pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const chunk = Buffer.concat([tail, buf.subarray(0, bytesRead)]);
        if (chunk.includes(pattern)) {
          file = relative(staging, f.path);
          probeState = states[i];
        }
        tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - pattern.length)));
      }
    } finally {
      await fh.close();
    }
    if (file) break;
  }
  return {
    n,
    at: Math.round(at),
    inStagingFiles: file !== undefined,
    freshLookMs: Math.round(performance.now() - t0),
    agentBacklogBytes,
    ...(file ? { file, probeState } : {}),
  };
}

async function runOne(tracker: string): Promise<Record<string, unknown>> {
  const work = join(dir, tracker);
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, "mnt"), { recursive: true });
  const image = join(work, "disk.img");
  // The replicator's staging store: beside the source disk by default (one disk serves both), or
  // elsewhere (--staging: a replicator's staging volumes are not the source server's disk).
  const staging = values.staging ? join(values.staging, tracker) : join(work, "staging");
  await rm(staging, { recursive: true, force: true });
  const fioFile = ["--name=load", `--filename=${join(work, "mnt", "fio.dat")}`, "--size=512M"];
  await timed("truncate", ["-s", "2G", image]);
  const loop = (
    await timed("losetup", [
      ...(values["loop-direct-io"] ? ["--direct-io=on"] : []),
      "--find",
      "--show",
      image,
    ])
  ).stdout.trim();
  let mounted = false;
  const children: ChildProcess[] = [];
  try {
    await timed("mkfs.ext4", ["-q", "-F", "-b", "4096", loop]);
    await timed("mount", [loop, join(work, "mnt")]);
    // The file fio writes into is written whole before the agent starts (its initial sync copies it):
    // the measured load is random rewrites of allocated blocks. Left to fio, the file would be
    // fallocated (unwritten extents), and the first write to each block would also convert its
    // extent in ext4's journal, a burst of metadata writes that lasts until most blocks were hit.
    if (!values["fresh-file"]) {
      await timed("fio", [...fioFile, "--rw=write", "--bs=1M", "--direct=1", "--ioengine=psync"]);
      await timed("sync", []);
    }
    mounted = true;
    // Replicator.
    const rep = spawn(
      FERRY,
      ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", staging],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    children.push(rep);
    const info = await new Promise<{ port: number; fingerprint: string; token: string }>((resolve) =>
      jsonLines(rep, (v) => resolve(v as never)),
    );
    // Agent, continuous.
    const agent = spawn(
      FERRY,
      [
        "agent",
        "replicate",
        "--json",
        "--continuous",
        "--tracker",
        tracker,
        "--scan-interval",
        "5",
        "--block-size",
        values["block-size"]!,
        "--compression",
        "none",
        "--disk",
        `${loop}=disk0`,
        "--replicator",
        `127.0.0.1:${info.port}`,
        "--replicator-fingerprint",
        info.fingerprint,
        "--token",
        info.token,
        "--source-server-id",
        "s-benchcontinuous00",
        "--state-dir",
        join(work, "agent"),
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          FERRY_BENCH_MEMLOG: join(work, "memory.log"),
          NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${MEMLOG_URL}`, values["agent-node-options"]]
            .filter(Boolean)
            .join(" "),
        },
      },
    );
    children.push(agent);
    // The agent's log (JSON lines on stderr): count the gaps (each a full rescan) and the placed misses.
    const logCounts = {
      gaps: 0,
      lostEventGaps: 0,
      placedMisses: 0,
      unplacedMisses: 0,
      gapReasons: [] as string[],
    };
    let measuring = false;
    let errBuf = "";
    const agentLog: string[] = [];
    agent.stderr!.on("data", (d: Buffer) => {
      errBuf += d.toString();
      for (let i = errBuf.indexOf("\n"); i >= 0; i = errBuf.indexOf("\n")) {
        const line = errBuf.slice(0, i);
        errBuf = errBuf.slice(i + 1);
        agentLog.push(line);
        if (agentLog.length > 200) agentLog.splice(0, 100);
        if (!measuring) continue;
        if (line.includes("change tracking gap")) {
          logCounts.gaps++;
          if (line.includes('"lost-events"')) logCounts.lostEventGaps++;
          logCounts.gapReasons.push(/"reason":"([^"]*)"/.exec(line)?.[1] ?? line);
        }
        if (line.includes("were placed on issued requests")) logCounts.placedMisses++;
        if (line.includes("cannot be placed")) logCounts.unplacedMisses++;
      }
    });
    let trackerReason = "";
    let synced = false;
    let lastBacklog = -1;
    let maxBacklog = 0;
    jsonLines(agent, (v) => {
      if (v.event === "tracker") trackerReason = String(v.reason);
      if (v.event === "status") {
        synced = true;
        lastBacklog = Number(v.backloggedBytes);
        if (measuring) maxBacklog = Math.max(maxBacklog, lastBacklog);
      }
    });
    for (let i = 0; i < 600 && !synced; i++) await new Promise((r) => setTimeout(r, 100));
    if (!synced) throw new Error("the initial sync did not finish in 60 s");

    const markerPath = join(work, "mnt", "marker");
    const marker = await open(markerPath, "w+");
    const nonce = randomBytes(4096);
    await marker.write(nonce, 0, 4096, 0);
    await marker.datasync();
    const replica = new AppendFollower(staging);
    await replica.contains(Buffer.alloc(0)); // reads what is there already

    const cpu0 = await cpuSeconds(agent.pid!);
    // The tracer (bpftrace, the agent's child) and this process (the lag probe) compete for the same CPUs.
    const tracerPid = await childPid(agent.pid!, "bpftrace");
    const tracerCpu0 = tracerPid ? await cpuSeconds(tracerPid) : 0;
    const selfCpu0 = process.cpuUsage();
    const repCpu0 = await cpuSeconds(rep.pid!);
    measuring = true;
    const continuousFrom = Date.now();
    const probe = spawn(process.execPath, ["-e", DISK_PROBE_SOURCE, image, String(2 * 1024 ** 3)], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    children.push(probe);
    const diskReads: [number, number][] = [];
    let probeBuf = "";
    probe.stdout!.on("data", (d: Buffer) => {
      probeBuf += d.toString();
      for (let i = probeBuf.indexOf("\n"); i >= 0; i = probeBuf.indexOf("\n")) {
        const [at, ms] = probeBuf.slice(0, i).split(" ").map(Number);
        probeBuf = probeBuf.slice(i + 1);
        diskReads.push([at!, ms!]);
      }
    });
    /** The probe's slowest read that overlapped [from, to] (absolute ms). */
    const diskStallDuring = (from: number, to: number) =>
      Math.max(0, ...diskReads.filter(([at, ms]) => at <= to && at + ms >= from).map(([, ms]) => ms));
    const rssAfterSync = await peakRssMiB(agent.pid!);
    const fio = spawn(
      "fio",
      [
        ...fioFile,
        "--rw=randwrite",
        "--bs=4k",
        `--rate=${values.rate}`,
        "--time_based",
        `--runtime=${seconds}`,
        ...(iodepth > 1 ? ["--ioengine=libaio", `--iodepth=${iodepth}`] : ["--ioengine=psync"]),
        "--direct=1",
        "--output-format=json",
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    children.push(fio);
    let fioOut = "";
    fio.stdout!.on("data", (d: Buffer) => (fioOut += d.toString()));
    const fioDone = new Promise<void>((r) => fio.once("exit", () => r()));
    const lags: number[] = [];
    const slowMarkers: SlowMarker[] = [];
    /** When each marker was written (ms since the load began), beside its lag: where the tail falls. */
    const lagAt: number[] = [];
    const end = Date.now() + seconds * 1000;
    for (let n = 1; Date.now() < end; n++) {
      const stamp = Buffer.from(nonce);
      stamp.writeUInt32LE(n, 0);
      await marker.write(stamp, 0, 4096, 0);
      await marker.datasync();
      const t0 = performance.now();
      const pattern = stamp.subarray(0, 64);
      let slow: SlowMarker | undefined;
      for (;;) {
        if (await replica.contains(pattern)) break;
        const waited = performance.now() - t0;
        // Past 2 s, once: is the marker in the staging files already (the probe missed it) or not yet?
        if (waited > 2000 && !slow) {
          slow = await freshLook(
            staging,
            replica,
            pattern,
            n,
            Date.now() - continuousFrom - waited,
            lastBacklog,
          );
          slowMarkers.push(slow);
          if (slow.inStagingFiles) break;
        }
        if (waited > 60000) {
          const late = await freshLook(staging, replica, pattern, n, slow?.at ?? 0, lastBacklog);
          throw new Error(
            `marker ${n} did not reach the replica in 60 s (at 2 s: ${JSON.stringify(slow)}; at 60 s: ${JSON.stringify(late)}); the agent's last log lines:\n${agentLog.slice(-20).join("\n")}`,
          );
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      lags.push(performance.now() - t0);
      lagAt.push(Date.now() - continuousFrom - lags.at(-1)!);
      await new Promise((r) => setTimeout(r, 250));
    }
    await fioDone;
    const loadEnd = Date.now();
    const loadReads = diskReads.filter(([at]) => at >= continuousFrom && at <= loadEnd);
    const cpuLoad = (await cpuSeconds(agent.pid!)) - cpu0;
    const repCpuLoad = (await cpuSeconds(rep.pid!)) - repCpu0;
    const tracerCpuLoad = tracerPid ? (await cpuSeconds(tracerPid).catch(() => NaN)) - tracerCpu0 : NaN;
    const selfCpu = process.cpuUsage(selfCpu0);
    const selfCpuLoad = (selfCpu.user + selfCpu.system) / 1e6;
    // Idle: once the backlog is gone, 10 s without writes.
    for (let i = 0; i < 600; i++) {
      await replica.contains(Buffer.alloc(0));
      if (lastBacklog === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const cpuIdle0 = await cpuSeconds(agent.pid!);
    await new Promise((r) => setTimeout(r, 10000));
    const cpuIdle = ((await cpuSeconds(agent.pid!)) - cpuIdle0) / 10;
    const rss = await peakRssMiB(agent.pid!);
    const fioJson = JSON.parse(fioOut.slice(fioOut.indexOf("{"))) as {
      jobs: { write: { bw_bytes: number } }[];
    };
    await marker.close();
    await replica.close();
    const memory = await memoryAtPeak(join(work, "memory.log"));
    const memoryContinuous = await memoryAtPeak(join(work, "memory.log"), continuousFrom);
    return {
      tracker,
      blockSize: Number(values["block-size"]),
      trackerReason,
      seconds,
      writeMBps: Number((fioJson.jobs[0]!.write.bw_bytes / 1e6).toFixed(1)),
      fioIodepth: iodepth,
      staging,
      loopDirectIo: values["loop-direct-io"]!,
      markers: lags.length,
      lagP50Ms: Math.round(percentile(lags, 50)),
      lagP99Ms: Math.round(percentile(lags, 99)),
      lagMaxMs: Math.round(Math.max(...lags)),
      /** [ms since the load began, lag ms, the disk probe's slowest read meanwhile] of each marker. */
      lagSeries: lags.map((l, i) => [
        Math.round(lagAt[i]!),
        Math.round(l),
        Math.round(diskStallDuring(continuousFrom + lagAt[i]!, continuousFrom + lagAt[i]! + l)),
      ]),
      /** The disk probe's reads while fio ran: slowest, p99, and how many took over 500 ms. */
      diskProbeMaxMs: Math.round(Math.max(0, ...loadReads.map(([, ms]) => ms))),
      diskProbeP99Ms: Math.round(
        percentile(
          loadReads.map(([, ms]) => ms),
          99,
        ),
      ),
      diskProbeStalls: loadReads.filter(([, ms]) => ms > 500).length,
      /** Markers over 1 s late, and how many of them waited through a disk stall (a probe read over 500 ms). */
      lateMarkers: lags.filter((l) => l > 1000).length,
      /** Markers still missing after 2 s, with what a fresh read of every staging file found then. */
      slowMarkers,
      lateMarkersInDiskStall: lags.filter(
        (l, i) =>
          l > 1000 && diskStallDuring(continuousFrom + lagAt[i]!, continuousFrom + lagAt[i]! + l) > 500,
      ).length,
      agentCpuCoresUnderLoad: Number((cpuLoad / seconds).toFixed(3)),
      replicatorCpuCoresUnderLoad: Number((repCpuLoad / seconds).toFixed(3)),
      tracerCpuCoresUnderLoad: Number((tracerCpuLoad / seconds).toFixed(3)),
      /** This benchmark's own process (writing markers, following the staging files). */
      benchCpuCoresUnderLoad: Number((selfCpuLoad / seconds).toFixed(3)),
      /** The largest backlog the agent reported while fio ran (bytes written, not yet acknowledged). */
      maxBacklogBytes: maxBacklog,
      agentCpuCoresIdle: Number(cpuIdle.toFixed(3)),
      agentPeakRssMiB: Math.round(rss),
      ...logCounts,
      agentNodeOptions: values["agent-node-options"],
      /** VmHWM when the initial sync was done: the peak of the sync phase. */
      agentPeakRssAfterSyncMiB: Math.round(rssAfterSync),
      memoryAtPeak: memory,
      memoryAtPeakContinuous: memoryContinuous,
    };
  } finally {
    for (const c of children.reverse()) {
      if (c.exitCode === null) {
        c.kill("SIGTERM");
        await new Promise((r) => {
          c.once("exit", r);
          setTimeout(r, 5000);
        });
      }
    }
    if (mounted)
      await timed("umount", [join(work, "mnt")]).catch(() => timed("umount", ["-l", join(work, "mnt")]));
    await timed("losetup", ["-d", loop]).catch(() => {});
    await rm(work, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

const results = [];
for (const t of values.trackers!.split(",")) results.push(await runOne(t));
if (values.json) console.log(JSON.stringify({ bench: "continuous", results }));
else {
  for (const r of results) {
    console.log(`${r.tracker} tracker, ${r.blockSize}-byte blocks (${r.trackerReason})`);
    console.log(
      `  fio random writes ${r.writeMBps} MB/s for ${r.seconds} s (queue depth ${r.fioIodepth}${r.loopDirectIo ? ", loop device with direct I/O" : ""}); ${r.markers} markers`,
    );
    console.log(
      `  lag p50 ${r.lagP50Ms} ms, p99 ${r.lagP99Ms} ms, max ${r.lagMaxMs} ms   (target P3: p99 ≤ 1000 ms with eBPF)`,
    );
    console.log(
      `  the disk itself (a 4 KiB O_DIRECT read every 100 ms): slowest ${r.diskProbeMaxMs} ms, p99 ${r.diskProbeP99Ms} ms, ${r.diskProbeStalls} reads over 500 ms; markers over 1 s late: ${r.lateMarkers}, ${r.lateMarkersInDiskStall} of them during such a stall`,
    );
    console.log(
      `  tracker gaps ${r.gaps} (lost-events ${r.lostEventGaps}); misses placed ${r.placedMisses}, not placed ${r.unplacedMisses}`,
    );
    console.log(
      `  agent CPU ${r.agentCpuCoresUnderLoad} cores under load, ${r.agentCpuCoresIdle} idle; peak RSS ${r.agentPeakRssMiB} MiB   (target P6: ≤ 1 core, ≤ 256 MiB, < 0.02 idle)`,
    );
    console.log(`  peak RSS of the initial sync ${r.agentPeakRssAfterSyncMiB} MiB`);
    if (r.memoryAtPeak)
      console.log(`  memory at the highest sampled RSS (MiB): ${JSON.stringify(r.memoryAtPeak)}`);
    if (r.memoryAtPeakContinuous)
      console.log(`  the same in continuous mode: ${JSON.stringify(r.memoryAtPeakContinuous)}`);
  }
}
