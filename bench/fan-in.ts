/**
 * P4: one replicator, many agents at once. Each agent is its own process
 * replicating its own disk (the P1 mix: 50% zero, 25% text-like, 25% random)
 * over TLS on loopback to one replicator process. Prints the single-stream
 * rate, the aggregate rate with N agents, their ratio, and the replicator's
 * peak RSS per stream.
 *
 *   node bench/fan-in.ts [--agents 32] [--size 128M] [--dir /var/tmp/ferry-fanin]
 *     [--staging /dev/shm/ferry-fanin-staging] [--runs N] [--json]
 *
 * Rates count sync time only, not process start-up (32 Node processes start
 * in several seconds on 2 cores): each agent reports how long its sync took,
 * so its sync began at (exit time − that). The aggregate is the bytes of all
 * disks over the window from the first sync's start to the last one's end.
 * The single-stream rate is one agent alone on a disk of the same size,
 * median of --runs runs (a short disk's rate moves from run to run).
 * Peak RSS is sampled from /proc/<pid>/status every 50 ms (VmHWM at the end).
 */
import { mkdir, rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseSize } from "../src/lib/units.ts";
import {
  MiB,
  type ReplicatorProcess,
  dropCaches,
  mbps,
  median,
  ratio,
  rssKiB,
  startReplicatorProcess,
  timed,
  writeBenchImage,
} from "./support.ts";

const FERRY = join(import.meta.dirname, "..", "bin", "ferry");

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "32" },
    size: { type: "string", default: "128M" },
    dir: { type: "string", default: "/var/tmp/ferry-fanin" },
    staging: { type: "string", default: "/dev/shm/ferry-fanin-staging" },
    runs: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});
const agents = Math.max(1, Math.min(64, Number(values.agents) || 32));
const runs = Math.max(1, Math.min(10, Number(values.runs) || 3));
const size = parseSize(values.size!);
const dir = values.dir!;
const staging = values.staging!;

interface AgentRun {
  /** performance.now() at the start of its sync, ms. */
  syncStart: number;
  syncEnd: number;
  seconds: number;
}

function sourceServerId(i: number): string {
  return `s-fanin${String(i).padStart(12, "0")}`;
}

async function runAgent(rep: ReplicatorProcess, image: string, i: number): Promise<AgentRun> {
  const r = await timed(FERRY, [
    "agent",
    "replicate",
    "--json",
    "--disk",
    `${image}=disk${i}`,
    "--replicator",
    `127.0.0.1:${rep.port}`,
    "--replicator-fingerprint",
    rep.fingerprint,
    "--token",
    rep.token,
    "--source-server-id",
    sourceServerId(i),
    "--state-dir",
    join(dir, `agent-state-${i}`),
    "--resync",
  ]);
  const end = performance.now();
  const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { disks: { seconds: number }[] };
  const seconds = done.disks[0]!.seconds;
  return { syncStart: end - seconds * 1000, syncEnd: end, seconds };
}

/** Runs `n` agents at once against a fresh replicator; the aggregate rate and the replicator's peak RSS. */
async function fanIn(
  images: string[],
  n: number,
): Promise<{ rate: number; peakRssMiB: number; idleRssMiB: number }> {
  await rm(staging, { recursive: true, force: true });
  await dropCaches();
  const rep = await startReplicatorProcess(staging);
  let peak = 0;
  let sampling = true;
  const idle = (await rssKiB(rep.pid)).rss;
  const sampler = (async () => {
    for (let k = 0; sampling && k < 20 * 60 * 30; k++) {
      const { rss } = await rssKiB(rep.pid);
      if (rss > peak) peak = rss;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const results = await Promise.all(images.slice(0, n).map((img, i) => runAgent(rep, img, i)));
    const { hwm } = await rssKiB(rep.pid);
    peak = Math.max(peak, hwm);
    const start = Math.min(...results.map((r) => r.syncStart));
    const end = Math.max(...results.map((r) => r.syncEnd));
    return { rate: mbps(size * n, (end - start) / 1000), peakRssMiB: peak / 1024, idleRssMiB: idle / 1024 };
  } finally {
    sampling = false;
    await sampler;
    await rep.stop();
  }
}

async function main(): Promise<void> {
  const log = (s: string) => {
    if (!values.json) process.stderr.write(`${s}\n`);
  };
  await mkdir(dir, { recursive: true });
  const images: string[] = [];
  const load: number[] = [loadavg()[0]!];
  try {
    log(`writing ${agents} disks of ${(size / MiB).toFixed(0)} MiB in ${dir}`);
    for (let i = 0; i < agents; i++) {
      const img = join(dir, `disk${i}.img`);
      await writeBenchImage(img, size);
      images.push(img);
    }
    const single: number[] = [];
    const singleRss: number[] = [];
    for (let r = 0; r < runs; r++) {
      const s = await fanIn(images, 1);
      single.push(s.rate);
      singleRss.push(s.peakRssMiB);
      log(
        `single stream, run ${r + 1}/${runs}: ${s.rate.toFixed(0)} MB/s, replicator peak ${s.peakRssMiB.toFixed(0)} MiB`,
      );
    }
    load.push(loadavg()[0]!);
    const many = await fanIn(images, agents);
    load.push(loadavg()[0]!);
    log(
      `${agents} agents: ${many.rate.toFixed(0)} MB/s aggregate, replicator peak ${many.peakRssMiB.toFixed(0)} MiB`,
    );
    const singleRate = median(single);
    const result = {
      bench: "fan-in",
      agents,
      diskBytes: size,
      staging,
      loadAverage1m: load.map((l) => Number(l.toFixed(2))),
      singleStreamMBps: Math.round(singleRate),
      singleRunsMBps: single.map(Math.round),
      aggregateMBps: Math.round(many.rate),
      aggregateVsSingle: Number(ratio(many.rate, singleRate)),
      replicatorIdleRssMiB: Math.round(many.idleRssMiB),
      replicatorPeakRssMiB: Math.round(many.peakRssMiB),
      replicatorRssPerStreamMiB: Number((many.peakRssMiB / agents).toFixed(1)),
      replicatorSingleStreamPeakRssMiB: Math.round(median(singleRss)),
      targetP4: "aggregate ≥ 0.80 × single stream; replicator RSS ≤ 32 MiB per stream",
    };
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      console.log(
        `one replicator, ${agents} agents, ${(size / MiB).toFixed(0)} MiB disks, staging in ${staging}`,
      );
      console.log(
        `  single stream  ${String(result.singleStreamMBps).padStart(6)} MB/s (runs ${result.singleRunsMBps.join(", ")})`,
      );
      console.log(
        `  ${String(agents).padStart(2)} at once    ${String(result.aggregateMBps).padStart(6)} MB/s aggregate, ${result.aggregateVsSingle}× single`,
      );
      console.log(
        `  replicator RSS idle ${result.replicatorIdleRssMiB} MiB, peak ${result.replicatorPeakRssMiB} MiB = ${result.replicatorRssPerStreamMiB} MiB per stream (single stream peak ${result.replicatorSingleStreamPeakRssMiB} MiB)`,
      );
      console.log(`  load average (1 min): ${result.loadAverage1m.join(", ")}`);
      console.log(`  target P4: ${result.targetP4}`);
    }
  } finally {
    for (const img of images) await rm(img, { force: true });
    for (let i = 0; i < agents; i++)
      await rm(join(dir, `agent-state-${i}`), { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

await main();
