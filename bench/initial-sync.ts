/**
 * P1: initial sync of a disk (50% zero, 25% text-like, 25% random) over TLS
 * on loopback, beside the disk's direct-read rate and rsync (daemon on
 * loopback) on the same disk.
 *
 *   node bench/initial-sync.ts [--size 4G] [--dir /var/tmp/ferry-bench] [--staging DIR]
 *     [--runs N] [--variant "NAME[@CHECKOUT|@@CHECKOUT]=AGENT ARGS" ...] [--skip-rsync] [--ceiling]
 *     [--profile DIR] [--json]
 *
 * As root the disk is a loop device (read with O_DIRECT, caches dropped
 * between runs); otherwise an image file. With --runs N each measurement is
 * taken N times, interleaved (direct read, Ferry, rsync, direct read, ...), and
 * the medians are reported: on a shared machine one run says little.
 * --profile writes V8 CPU profiles of each agent and replicator run into DIR
 * (the main threads; worker threads write their own).
 *
 * --variant compares agent configurations in one session, interleaved run by
 * run (e.g. `--variant "none=--compression none" --variant "auto="`); with
 * @CHECKOUT the agent runs from another checkout of Ferry (a worktree of an
 * older commit, for before/after figures), the replicator from this one; with
 * @@CHECKOUT both the agent and the replicator run from that checkout (for
 * changes on the replicator's side).
 *
 * --ceiling adds, each run, what this machine can do at best (see
 * initial-sync-ceiling.ts): the agent against a replicator that only decodes
 * and acknowledges (no verification, no writes), and the disk's non-zero
 * bytes sent over TLS alone from memory (rated as the whole disk over that time).
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseSize } from "../src/lib/units.ts";
import {
  GiB,
  dropCaches,
  isRoot,
  mbps,
  median,
  ratio,
  timed,
  timedWithUsage,
  writeBenchImage,
} from "./support.ts";

const ROOT = join(import.meta.dirname, "..");
const FERRY = join(ROOT, "bin", "ferry");
const CEILING = join(import.meta.dirname, "initial-sync-ceiling.ts");

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "4G" },
    dir: { type: "string", default: "/var/tmp/ferry-bench" },
    staging: { type: "string" },
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "1" },
    variant: { type: "string", multiple: true, default: [] },
    "skip-rsync": { type: "boolean", default: false },
    profile: { type: "string" },
    ceiling: { type: "boolean", default: false },
  },
});
const runs = Math.max(1, Math.min(20, Number(values.runs) || 1));

interface Variant {
  name: string;
  ferry: string;
  /** The ferry of the replicator this variant's agent sends to. */
  replicator: string;
  args: string[];
}

function parseVariant(v: string): Variant {
  const eq = v.indexOf("=");
  const head = eq < 0 ? v : v.slice(0, eq);
  const both = head.includes("@@");
  const [name, checkout] = head.split(/@@?/);
  const args =
    eq < 0
      ? []
      : v
          .slice(eq + 1)
          .split(/\s+/)
          .filter(Boolean);
  const ferry = checkout ? join(checkout, "bin", "ferry") : FERRY;
  return { name: name || "ferry", ferry, replicator: both ? ferry : FERRY, args };
}
const variants = values.variant!.length ? values.variant!.map(parseVariant) : [parseVariant("ferry=")];
const size = parseSize(values.size!);
const dir = values.dir!;
const staging = values.staging ?? join(dir, "staging");

/** The environment of a Ferry process: with --profile, one that writes a CPU profile named `name`. */
function profileEnv(name: string): NodeJS.ProcessEnv {
  if (!values.profile) return process.env;
  const flags = `--cpu-prof --cpu-prof-dir=${values.profile} --cpu-prof-name=${name}-${Date.now()}.cpuprofile`;
  return { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${flags}` };
}

/** A replicator (`ferry replicator run`, or with `sink` the do-nothing one of initial-sync-ceiling.ts). */
async function startReplicator(ferry: string | "sink" | "raw-sink"): Promise<{
  port: number;
  fingerprint: string;
  token: string;
  /** CPU seconds the replicator process used so far (user + system, from /proc). */
  cpuSeconds: () => Promise<number>;
  stop: () => Promise<void>;
}> {
  const [cmd, args] =
    ferry === "sink" || ferry === "raw-sink"
      ? [process.execPath, [CEILING, ferry]]
      : [ferry, ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", staging]];
  const child = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "ignore"],
    env: profileEnv("replicator"),
  });
  const first = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) resolve(buf.slice(0, i));
    });
    child.on("exit", (c) => reject(new Error(`replicator exited ${c}`)));
  });
  const info = JSON.parse(first) as { port: number; fingerprint: string; token: string };
  return {
    ...info,
    cpuSeconds: () => processCpuSeconds(child.pid!),
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** utime + stime of a live process (all its threads), in seconds; NaN where /proc is missing. */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // Fields after the command name (which may hold spaces) start at the last ')'.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  return ticks / 100;
}

async function rsyncDaemon(dest: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, "rsyncd.conf");
  await writeFile(
    conf,
    `port = ${port}\naddress = 127.0.0.1\nuse chroot = false\npid file = ${join(dir, "rsyncd.pid")}\n[bench]\npath = ${dest}\nread only = false\nuid = ${process.getuid?.() ?? 0}\ngid = ${process.getgid?.() ?? 0}\n`,
  );
  const child = spawn("rsync", ["--daemon", "--no-detach", `--config=${conf}`], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

interface FerryRun {
  rate: number;
  seconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
  /** CPU seconds of the replicator process during the agent's run. */
  replicatorCpuSeconds: number;
  wireBytes: number;
  zeroBytes: number;
  compressionRatio: number;
  /** Where the agent's time went (ms), as it reports it. */
  stalls: Record<string, number>;
}

async function directRead(source: string, direct: boolean): Promise<number> {
  await dropCaches();
  const dd = await timed("dd", [
    `if=${source}`,
    "of=/dev/null",
    "bs=1M",
    ...(direct ? ["iflag=direct"] : []),
  ]);
  return mbps(size, dd.seconds);
}

async function ferryRun(source: string, run: number, variant: Variant, sink = false): Promise<FerryRun> {
  const rep = await startReplicator(sink ? "sink" : variant.replicator);
  let ferry;
  let replicatorCpu: number;
  try {
    await dropCaches();
    const cpu0 = await rep.cpuSeconds();
    const env = profileEnv(`agent-${variant.name}-${run}`);
    ferry = await timedWithUsage(
      variant.ferry,
      [
        "agent",
        "replicate",
        "--json",
        "--disk",
        `${source}=bench`,
        "--replicator",
        `127.0.0.1:${rep.port}`,
        "--replicator-fingerprint",
        rep.fingerprint,
        "--token",
        rep.token,
        "--source-server-id",
        "s-bench000000000000",
        "--state-dir",
        join(dir, "agent-state"),
        "--resync",
        ...variant.args,
      ],
      env,
    );
    replicatorCpu = (await rep.cpuSeconds()) - cpu0;
  } finally {
    await rep.stop();
  }
  await rm(staging, { recursive: true, force: true });
  const done = JSON.parse(ferry.stdout.trim().split("\n").at(-1)!) as {
    disks: {
      seconds: number;
      wireBytes: number;
      zeroBytes: number;
      compressedRawBytes: number;
      compressedBytes: number;
      stalls?: Record<string, number>;
    }[];
  };
  const d = done.disks[0]!;
  return {
    stalls: d.stalls ?? {},
    rate: mbps(size, d.seconds),
    seconds: d.seconds,
    cpuSeconds: ferry.userSeconds + ferry.sysSeconds,
    maxRssMiB: Math.round(ferry.maxRssKiB / 1024),
    replicatorCpuSeconds: replicatorCpu,
    wireBytes: d.wireBytes,
    zeroBytes: d.zeroBytes,
    compressionRatio: d.compressedBytes ? d.compressedRawBytes / d.compressedBytes : 1,
  };
}

/** The disk's non-zero half sent over TLS alone (from memory, to a sink that discards), rated as the whole disk. */
async function rawTlsRun(): Promise<number> {
  const sink = await startReplicator("raw-sink");
  try {
    const r = await timed(process.execPath, [CEILING, "raw-send", String(sink.port), String(size / 2)]);
    return mbps(size, (JSON.parse(r.stdout) as { seconds: number }).seconds);
  } finally {
    await sink.stop();
  }
}

async function rsyncRun(image: string): Promise<number> {
  const dest = join(dir, "rsync-dest");
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  const daemon = await rsyncDaemon(dest);
  let rs;
  try {
    await dropCaches();
    rs = await timed("rsync", [
      "--whole-file",
      "--inplace",
      image,
      `rsync://127.0.0.1:${daemon.port}/bench/`,
    ]);
  } finally {
    await daemon.stop();
    await rm(dest, { recursive: true, force: true });
  }
  return mbps(size, rs.seconds);
}

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (values.profile) await mkdir(values.profile, { recursive: true });
  await rm(staging, { recursive: true, force: true });
  const image = join(dir, "disk.img");
  const log = (s: string) => {
    if (!values.json) process.stderr.write(`${s}\n`);
  };
  log(`writing a ${(size / GiB).toFixed(1)} GiB benchmark disk at ${image}`);
  await writeBenchImage(image, size);
  let source = image;
  let loop: string | undefined;
  if (isRoot()) {
    loop = (await timed("losetup", ["--find", "--show", "--direct-io=on", image])).stdout.trim();
    source = loop;
  }
  const direct: number[] = [];
  const ferry = new Map<string, FerryRun[]>(variants.map((v) => [v.name, []]));
  const rsync: number[] = [];
  const load: number[] = [];
  const sinkRuns: FerryRun[] = [];
  const rawTls: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      load.push(loadavg()[0]!);
      // 1. Direct read of the same disk.
      direct.push(await directRead(source, loop !== undefined));
      log(`run ${r + 1}/${runs}: direct read ${direct.at(-1)!.toFixed(0)} MB/s`);
      // 2. Ferry: replicator and agent in their own processes, TLS on loopback.
      for (const v of variants) {
        const f = await ferryRun(source, r, v);
        ferry.get(v.name)!.push(f);
        log(
          `run ${r + 1}/${runs}: ${v.name} ${f.rate.toFixed(0)} MB/s (${f.seconds.toFixed(2)} s, agent ${f.cpuSeconds.toFixed(1)} CPU s, ${f.maxRssMiB} MiB, replicator ${f.replicatorCpuSeconds.toFixed(1)} CPU s)`,
        );
      }
      if (values.ceiling) {
        const f = await ferryRun(source, r, variants[0]!, true);
        sinkRuns.push(f);
        rawTls.push(await rawTlsRun());
        log(
          `run ${r + 1}/${runs}: agent → sink ${f.rate.toFixed(0)} MB/s (agent ${f.cpuSeconds.toFixed(1)} CPU s, sink ${f.replicatorCpuSeconds.toFixed(1)} CPU s); TLS alone ${rawTls.at(-1)!.toFixed(0)} MB/s`,
        );
      }
      // 3. rsync to a daemon on loopback, same disk (as a file: rsync does not read devices).
      if (!values["skip-rsync"]) {
        rsync.push(await rsyncRun(image));
        log(`run ${r + 1}/${runs}: rsync ${rsync.at(-1)!.toFixed(0)} MB/s`);
      }
    }
  } finally {
    if (loop) await timed("losetup", ["-d", loop]);
    await rm(image, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
  const directRate = median(direct);
  const rsyncRate = rsync.length ? median(rsync) : NaN;
  const summaries = variants.map((v) => {
    const fs = ferry.get(v.name)!;
    const rate = median(fs.map((f) => f.rate));
    const last = fs.at(-1)!;
    return {
      variant: v.name,
      agentArgs: v.args.join(" "),
      ferryMBps: Math.round(rate),
      ferryRunsMBps: fs.map((f) => Math.round(f.rate)),
      ferrySyncSeconds: Number(median(fs.map((f) => f.seconds)).toFixed(2)),
      ferryAgentCpuSeconds: Number(median(fs.map((f) => f.cpuSeconds)).toFixed(2)),
      // Each run's CPU too: on a shared machine a median alone hides how far they spread.
      ferryRunsAgentCpuSeconds: fs.map((f) => Number(f.cpuSeconds.toFixed(2))),
      ferryRunsReplicatorCpuSeconds: fs.map((f) => Number(f.replicatorCpuSeconds.toFixed(2))),
      ferryAgentMaxRssMiB: Math.max(...fs.map((f) => f.maxRssMiB)),
      ferryReplicatorCpuSeconds: Number(median(fs.map((f) => f.replicatorCpuSeconds)).toFixed(2)),
      ferryWireBytes: last.wireBytes,
      ferryZeroBytes: last.zeroBytes,
      compressionRatio: Number(last.compressionRatio.toFixed(2)),
      agentStallsMs: last.stalls,
      ferryVsDirect: Number(ratio(rate, directRate)),
      ferryVsRsync: Number(ratio(rate, rsyncRate)),
    };
  });
  const result = {
    bench: "initial-sync",
    sizeBytes: size,
    source: loop ? "loop device (O_DIRECT)" : "image file",
    staging,
    runs,
    loadAverage1m: load.map((l) => Number(l.toFixed(2))),
    directReadMBps: Math.round(directRate),
    directRunsMBps: direct.map(Math.round),
    rsyncMBps: Math.round(rsyncRate),
    rsyncRunsMBps: rsync.map(Math.round),
    // The first variant's figures at the top level, as before variants existed.
    ...summaries[0]!,
    variants: summaries,
    ...(values.ceiling
      ? {
          ceiling: {
            agentToSinkMBps: Math.round(median(sinkRuns.map((f) => f.rate))),
            agentToSinkRunsMBps: sinkRuns.map((f) => Math.round(f.rate)),
            agentToSinkAgentCpuSeconds: Number(median(sinkRuns.map((f) => f.cpuSeconds)).toFixed(2)),
            agentToSinkSinkCpuSeconds: Number(median(sinkRuns.map((f) => f.replicatorCpuSeconds)).toFixed(2)),
            tlsAloneMBps: Math.round(median(rawTls)),
            tlsAloneRunsMBps: rawTls.map(Math.round),
          },
        }
      : {}),
    targetP1: "ferry ≥ 0.80 × direct read; ≥ 3 × rsync",
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const of = runs > 1 ? ` (medians of ${runs} runs)` : "";
    console.log(
      `initial sync of ${(size / GiB).toFixed(1)} GiB (${result.source}), staging in ${staging}${of}`,
    );
    console.log(`  direct read   ${String(result.directReadMBps).padStart(6)} MB/s`);
    console.log(`  rsync daemon  ${String(result.rsyncMBps).padStart(6)} MB/s`);
    for (const s of summaries) {
      console.log(
        `  ${s.variant.padEnd(12)}  ${String(s.ferryMBps).padStart(6)} MB/s   ${s.ferryVsDirect}× direct read, ${s.ferryVsRsync}× rsync   [${s.agentArgs}]`,
      );
      console.log(
        `                agent ${s.ferryAgentCpuSeconds.toFixed(1)} CPU s, replicator ${s.ferryReplicatorCpuSeconds.toFixed(1)} CPU s (runs ${s.ferryRunsReplicatorCpuSeconds.join(", ")}), peak RSS ${s.ferryAgentMaxRssMiB} MiB; wire ${(s.ferryWireBytes / GiB).toFixed(2)} GiB; zstd ${s.compressionRatio.toFixed(2)}×; runs ${s.ferryRunsMBps.join(", ")} MB/s`,
      );
    }
    if (result.ceiling) {
      const c = result.ceiling;
      console.log(
        `  ceiling: agent → do-nothing sink ${c.agentToSinkMBps} MB/s (${ratio(c.agentToSinkMBps, directRate)}× direct read; runs ${c.agentToSinkRunsMBps.join(", ")}; agent ${c.agentToSinkAgentCpuSeconds} CPU s, sink ${c.agentToSinkSinkCpuSeconds} CPU s)`,
      );
      console.log(
        `  ceiling: the non-zero half over TLS alone ${c.tlsAloneMBps} MB/s of disk (${ratio(c.tlsAloneMBps, directRate)}× direct read; runs ${c.tlsAloneRunsMBps.join(", ")})`,
      );
    }
    console.log(`  load average (1 min) at each run: ${result.loadAverage1m.join(", ")}`);
    console.log(`  target P1: ${result.targetP1}`);
  }
}

await main();
