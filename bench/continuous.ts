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
 *        [--trace-markers] [--log-dir DIR]
 *
 * The agent runs through bin/ferry, which sets its young generation
 * (`--max-semi-space-size=2`); `FERRY_AGENT_NODE_FLAGS=` (empty) in the
 * environment runs it with V8's defaults. `--loop-direct-io` makes the loop
 * device bypass the page cache for its image file (closer to a real disk, but
 * fio at queue depth 1 then reaches only ~13 MB/s here; `--iodepth 8` keeps
 * 8 writes in flight with libaio, as a database or a page-cache flush does).
 *
 * `--trace-markers` splits each marker's lag with a bpftrace of its own
 * (bench/continuous-trace.ts): the write reaching the device, the agent
 * picking it up, its read, and everything after the read. `--log-dir DIR`
 * keeps the agent's and the replicator's logs at debug level (each turn of
 * the continuous loop, each flush) in DIR.
 *
 * It also reports the tracker's gaps (each a rescan) and placed misses from
 * the agent's log, the CPU of the agent, its tracer (bpftrace), the replicator
 * and this process (the lag probe: all share the CPUs), the largest backlog,
 * and the agent's memory at its highest RSS (main thread: V8 heap reserved and
 * used, external, array buffers).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isRoot, timed } from "./support.ts";
import {
  type MarkerTimes,
  MarkerTracer,
  deviceHolds,
  deviceOf,
  firstBlockOffset,
  recursionMissesBetween,
  rqRecursionMisses,
  sinceWrite,
  splitLags,
} from "./continuous-trace.ts";
import {
  AppendFollower,
  DISK_PROBE_SOURCE,
  MEMLOG_URL,
  type SlowMarker,
  childPid,
  cpuSeconds,
  freshLook,
  jsonLines,
  memoryAtPeak,
  peakRssMiB,
  percentile,
} from "./continuous-probes.ts";

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
    /** Split each marker's lag (bench/continuous-trace.ts): device, agent pickup, after the read. */
    "trace-markers": { type: "boolean", default: false },
    /** Keep the agent's and the replicator's logs here, at debug level (each turn, each flush). */
    "log-dir": { type: "string" },
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
    const logDir = values["log-dir"];
    if (logDir) await mkdir(logDir, { recursive: true });
    const debugEnv = logDir ? { ...process.env, FERRY_LOG_LEVEL: "debug" } : process.env;
    const rep = spawn(
      FERRY,
      ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", staging],
      { stdio: ["ignore", "pipe", logDir ? "pipe" : "ignore"], env: debugEnv },
    );
    children.push(rep);
    if (logDir) rep.stderr!.pipe(createWriteStream(join(logDir, `replicator-${tracker}.log`)));
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
          // At least info: the placed misses are counted from the agent's log (`--json` means warn).
          FERRY_LOG_LEVEL: "info",
          ...debugEnv,
          FERRY_BENCH_MEMLOG: join(work, "memory.log"),
          NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${MEMLOG_URL}`, values["agent-node-options"]]
            .filter(Boolean)
            .join(" "),
        },
      },
    );
    children.push(agent);
    if (logDir) agent.stderr!.pipe(createWriteStream(join(logDir, `agent-${tracker}.log`)));
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
    let tracer: MarkerTracer | undefined;
    const markerTimes: MarkerTimes[] = [];
    if (values["trace-markers"]) {
      tracer = new MarkerTracer(await deviceOf(loop), await firstBlockOffset(markerPath), agent.pid!);
      children.push(tracer.child);
      await tracer.ready;
    }
    const replica = new AppendFollower(staging);
    await replica.contains(Buffer.alloc(0)); // reads what is there already

    const cpu0 = await cpuSeconds(agent.pid!);
    // The tracer (bpftrace, the agent's child) and this process (the lag probe) compete for the same CPUs.
    const tracerPid = await childPid(agent.pid!, "bpftrace");
    const tracerCpu0 = tracerPid ? await cpuSeconds(tracerPid) : 0;
    const selfCpu0 = process.cpuUsage();
    const repCpu0 = await cpuSeconds(rep.pid!);
    measuring = true;
    const recursionMisses0 = await rqRecursionMisses("block_rq_complete");
    const issueRecursionMisses0 = await rqRecursionMisses("block_rq_issue");
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
      const writeNs = process.hrtime.bigint();
      await marker.write(stamp, 0, 4096, 0);
      await marker.datasync();
      const syncedNs = process.hrtime.bigint();
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
          // Is the marker on the source device at all (what the agent would read), and what did the tracer see?
          const forensic = {
            onDevice: await deviceHolds(loop, await firstBlockOffset(markerPath), pattern),
            ...(tracer ? { msSinceWrite: sinceWrite(tracer.events, writeNs) } : {}),
          };
          throw new Error(
            `${JSON.stringify(forensic)} ` +
              `marker ${n} did not reach the replica in 60 s (at 2 s: ${JSON.stringify(slow)}; at 60 s: ${JSON.stringify(late)}); the agent's last log lines:\n${agentLog.slice(-20).join("\n")}`,
          );
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      markerTimes.push({ n, writeNs, syncedNs, foundNs: process.hrtime.bigint() });
      lags.push(performance.now() - t0);
      lagAt.push(Date.now() - continuousFrom - lags.at(-1)!);
      await new Promise((r) => setTimeout(r, 250));
    }
    await fioDone;
    await tracer?.stop();
    const loadEnd = Date.now();
    const recursionMisses = recursionMissesBetween(
      recursionMisses0,
      await rqRecursionMisses("block_rq_complete"),
    );
    const issueRecursionMisses = recursionMissesBetween(
      issueRecursionMisses0,
      await rqRecursionMisses("block_rq_issue"),
    );
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
      /** Completions the kernel skipped BPF for under load (bpftool; null without it). */
      rqCompleteRecursionMisses: recursionMisses,
      rqIssueRecursionMisses: issueRecursionMisses,
      agentNodeOptions: values["agent-node-options"],
      /** VmHWM when the initial sync was done: the peak of the sync phase. */
      agentPeakRssAfterSyncMiB: Math.round(rssAfterSync),
      memoryAtPeak: memory,
      memoryAtPeakContinuous: memoryContinuous,
      ...(tracer ? { markerParts: splitLags(markerTimes, tracer.events) } : {}),
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
      `  tracker gaps ${r.gaps} (lost-events ${r.lostEventGaps}); misses placed ${r.placedMisses}, not placed ${r.unplacedMisses}; recursion misses under load: block_rq_complete ${r.rqCompleteRecursionMisses ?? "(no bpftool)"}, block_rq_issue ${r.rqIssueRecursionMisses ?? "(no bpftool)"}`,
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
