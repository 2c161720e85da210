/**
 * P3/P4 at the replicator alone: many small DATA frames (one 4 KiB hash block
 * each, at random block offsets of a 2 GiB disk) streamed over TLS on loopback
 * to a real replicator process, as continuous replication of random 4 KiB
 * writes sends them. Prints the frames per second sent, the time from the
 * first frame to the last ACK, the ACK latency (a frame's send to the first
 * ACK covering it: p50/p99), the number of ACKs, the replicator's peak RSS and
 * its RSS when a quarter, half, three quarters and all of the frames were sent
 * (flat when the replicator holds nothing per frame written).
 *
 *   node bench/small-frames.ts [--frames 100000] [--rate 0 (MB/s, 0: as fast as the window allows)]
 *     [--window 64M] [--staging /dev/shm/ferry-small-frames] [--cpu-prof DIR] [--json]
 *
 * --window bounds the bytes sent and not yet ACKed, like the agent's window.
 * --cpu-prof writes the replicator's CPU profile to DIR.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { parseSize } from "../src/lib/units.ts";
import { Compression, HelloMode, PROTOCOL_VERSION, blockHashes } from "../src/wire/index.ts";
import { rawConnect } from "../test/support/raw-client.ts";
import { GiB, rssKiB, startReplicatorProcess } from "./support.ts";

const BLOCK = 4096;
const DISK = 2 * GiB;

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "100000" },
    rate: { type: "string", default: "0" },
    window: { type: "string", default: "64M" },
    staging: { type: "string", default: "/dev/shm/ferry-small-frames" },
    "cpu-prof": { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const frames = Math.max(1, Math.min(10_000_000, Number(values.frames) || 100_000));
const rate = Math.max(0, Number(values.rate) || 0) * 1e6;
const windowBytes = parseSize(values.window!);
const staging = values.staging!;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

async function main(): Promise<void> {
  await rm(staging, { recursive: true, force: true });
  // Distinct payloads, hashed before the clock starts (the agent hashes on its own cores).
  const distinct = 4096;
  const payloads = Array.from({ length: distinct }, () => randomBytes(BLOCK));
  const hashes = payloads.map((p) => blockHashes(p, BLOCK));
  const env = { ...process.env };
  if (values["cpu-prof"]) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${values["cpu-prof"]}`;
  const rep = await startReplicatorProcess(staging, { env, stderr: "inherit" });
  const idle = (await rssKiB(rep.pid)).rss;
  let peak = idle;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const r = await rssKiB(rep.pid);
      if (r.rss > peak) peak = r.rss;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const s = await rawConnect({
      host: "127.0.0.1",
      port: rep.port,
      fingerprint: rep.fingerprint,
      token: rep.token,
    });
    s.conn.send({
      type: "HELLO",
      protocolVersion: PROTOCOL_VERSION,
      mode: HelloMode.NEW,
      sourceServerId: "s-smallframes0001",
      diskId: "vda",
      diskSize: BigInt(DISK),
      logicalBlockSize: 512,
      hashBlockSize: BLOCK,
      generationId: randomBytes(16),
      token: rep.token,
    });
    await s.next("WELCOME", 10_000);
    const sentAt = new Float64Array(frames + 1);
    const latencies: number[] = [];
    let acked = 0;
    let acks = 0;
    let lastAckAt = 0;
    let wake: (() => void) | undefined;
    s.frames.length = 0;
    const onAck = () => {
      for (const f of s.frames.splice(0)) {
        if (f.type === "ERROR") throw new Error(`replicator: ${f.code} ${f.message}`);
        if (f.type !== "ACK") continue;
        const seq = Number(f.seq);
        const now = performance.now();
        for (let q = acked + 1; q <= seq; q++) latencies.push(now - sentAt[q]!);
        acked = Math.max(acked, seq);
        acks++;
        lastAckAt = now;
      }
      wake?.();
    };
    const poll = setInterval(onAck, 1);
    s.conn.stream.on("data", () => queueMicrotask(onAck));
    const quarters = new Set([1, 2, 3, 4].map((q) => Math.round((frames * q) / 4)));
    const rssAtMiB: number[] = [];
    const start = performance.now();
    for (let seq = 1; seq <= frames; seq++) {
      if (quarters.has(seq)) rssAtMiB.push(Math.round((await rssKiB(rep.pid)).rss / 1024));
      if (rate > 0) {
        const due = start + ((seq - 1) * BLOCK * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      while ((seq - 1 - acked) * BLOCK >= windowBytes) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 5);
        });
        onAck();
      }
      const i = seq % distinct;
      const block = Math.floor(Math.random() * (DISK / BLOCK));
      sentAt[seq] = performance.now();
      const ok = s.conn.send({
        type: "DATA",
        seq: BigInt(seq),
        offset: BigInt(block * BLOCK),
        length: BLOCK,
        compression: Compression.NONE,
        hashes: hashes[i]!,
        payload: payloads[i]!,
      });
      if (!ok) await s.conn.drain();
    }
    const sentEnd = performance.now();
    const deadline = Date.now() + 120_000;
    while (acked < frames && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
      onAck();
    }
    clearInterval(poll);
    if (acked < frames) throw new Error(`only ${acked} of ${frames} frames ACKed in 120 s`);
    latencies.sort((a, b) => a - b);
    const out = {
      frames,
      rateTarget: rate / 1e6,
      sendSeconds: (sentEnd - start) / 1000,
      framesPerSecond: Math.round(frames / ((sentEnd - start) / 1000)),
      lastAckSeconds: (lastAckAt - start) / 1000,
      ackedMBps: Math.round((frames * BLOCK) / ((lastAckAt - start) / 1000) / 1e5) / 10,
      acks,
      ackLatencyP50Ms: Math.round(percentile(latencies, 50)),
      ackLatencyP99Ms: Math.round(percentile(latencies, 99)),
      idleRssMiB: Math.round(idle / 1024),
      peakRssMiB: Math.round(Math.max(peak, (await rssKiB(rep.pid)).hwm) / 1024),
      rssAtQuartersMiB: rssAtMiB,
      load: loadavg()
        .map((l) => l.toFixed(2))
        .join(" "),
    };
    s.conn.close();
    await s.closed;
    if (values.json) process.stdout.write(JSON.stringify(out) + "\n");
    else for (const [k, v] of Object.entries(out)) process.stdout.write(`${k.padEnd(16)} ${v}\n`);
  } finally {
    sampling = false;
    await sampler;
    await rep.stop();
    await rm(staging, { recursive: true, force: true });
  }
}

await main();
