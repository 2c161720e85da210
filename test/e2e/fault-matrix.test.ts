/**
 * The fault matrix of quality.md, rows 1–10: the agent and the replicator run
 * as processes in two network namespaces joined by a veth pair, with faults
 * put on the path (iptables, tc, link state, a fault proxy of our own, kill
 * -9). Each test ends with the full comparison of the self-verifying
 * workload: whole-disk hash, per-block hash list, and every replica block
 * checked against its own header.
 *
 * Long variants for manual runs: FERRY_FAULT_BLACKHOLE_S=60 (row 4),
 * FERRY_FAULT_LINK_DOWN_S=120 (row 7).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { stagingImage } from "../support/data-plane.ts";
import { join } from "node:path";
import type { Fault, ProxyEvent } from "../support/fault-proxy.ts";
import { createScratch, haveRoot, type Scratch } from "../support/loop.ts";
import { createNetPair, type NetPair, type NsProcess } from "../support/netns.ts";
import { checkBlocks, compareDisks, mutateWorkload, writeWorkload } from "../support/workload.ts";

const MiB = 1024 * 1024;
const SERVER = "s-faultmatrix00000";
const DISK = "disk0";
const ROOT = join(import.meta.dirname, "..", "..");
const FERRY = join(ROOT, "bin", "ferry");
const NODE = process.execPath;
const PORT = 1500;
const PROXY_PORT = 1501;
/** Short heartbeats so a silent path is noticed in about a second and a half. */
const HEARTBEAT_MS = 250;
const IDLE_MS = 1500;
const CONNECT_MS = 2000;
const BLACKHOLE_S = Number(process.env.FERRY_FAULT_BLACKHOLE_S ?? 5);
const LINK_DOWN_S = Number(process.env.FERRY_FAULT_LINK_DOWN_S ?? 5);

interface Progress {
  event: "progress";
  mode: string;
  readOffset: number;
  ackedOffset: number;
}

interface DiskResult {
  diskId: string;
  mode: "initial" | "resume" | "rescan";
  dataBytes: number;
  wireBytes: number;
  reconnects: number;
  resumedFrom: number;
  seconds: number;
}

interface LogLine {
  at: number;
  msg: string;
  code?: string;
  error?: string;
  mode?: string;
  resumeOffset?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One scenario's world: the namespaces, a disk image, a replicator, agents. */
class World {
  readonly pair: NetPair;
  readonly scratch: Scratch;
  readonly disk: string;
  readonly size: number;
  readonly dataDir: string;
  replicator: NsProcess | undefined;
  identity: { fingerprint: string; token: string } | undefined;

  constructor(pair: NetPair, scratch: Scratch, size: number) {
    this.pair = pair;
    this.scratch = scratch;
    this.size = size;
    this.disk = join(scratch.dir, "source.img");
    this.dataDir = join(scratch.dir, "replicator");
  }

  /** The replica as a raw image: the staging volume's head, exported. */
  replica(): Promise<string> {
    return stagingImage(this.dataDir, SERVER, DISK);
  }

  async startReplicator(): Promise<NsProcess> {
    const p = this.pair.spawn("staging", FERRY, [
      "replicator",
      "run",
      "--json",
      "--data-dir",
      this.dataDir,
      "--listen",
      `${this.pair.addr.staging}:${PORT}`,
      "--heartbeat-ms",
      String(HEARTBEAT_MS),
      "--idle-timeout-ms",
      String(IDLE_MS),
    ]);
    const line = await p.waitLine("stdout", (l) => l.includes('"fingerprint"'), 20000);
    this.identity = JSON.parse(line.text) as { fingerprint: string; token: string };
    this.replicator = p;
    return p;
  }

  /** Starts `ferry agent replicate` in the source namespace. */
  startAgent(o: { bandwidth?: number; window?: number; port?: number; idleMs?: number } = {}): NsProcess {
    const id = this.identity!;
    return this.pair.spawn("source", FERRY, [
      "agent",
      "replicate",
      "--json",
      "--disk",
      `${this.disk}=${DISK}`,
      "--replicator",
      `${this.pair.addr.staging}:${o.port ?? PORT}`,
      "--replicator-fingerprint",
      id.fingerprint,
      "--token",
      id.token,
      "--source-server-id",
      SERVER,
      "--state-dir",
      join(this.scratch.dir, "agent"),
      "--bandwidth",
      String(o.bandwidth ?? 0),
      "--window",
      String(o.window ?? 4),
      "--heartbeat-ms",
      String(HEARTBEAT_MS),
      "--idle-timeout-ms",
      String(o.idleMs ?? IDLE_MS),
      "--connect-timeout-ms",
      String(CONNECT_MS),
      // The long manual variants outlast the default budget of failed attempts in a row.
      ...(BLACKHOLE_S > 10 || LINK_DOWN_S > 10 ? ["--max-reconnects", "100"] : []),
    ]);
  }

  /** The fault proxy as a process in the staging namespace, in front of the replicator. */
  async startProxy(): Promise<FaultProxyProcess> {
    const p = this.pair.spawn("staging", NODE, [
      "--disable-warning=ExperimentalWarning",
      join(ROOT, "test", "support", "fault-proxy.ts"),
      "--listen",
      `${this.pair.addr.staging}:${PROXY_PORT}`,
      "--target",
      `${this.pair.addr.staging}:${PORT}`,
    ]);
    await p.waitLine("stdout", (l) => l.includes('"listening"'), 10000);
    return {
      process: p,
      async set(fault) {
        const from = p.stdout.length;
        p.send(JSON.stringify(fault));
        await p.waitLine("stdout", (l) => l.includes('"fault-set"'), 5000, from);
      },
      events: () => p.stdout.map((l) => JSON.parse(l.text) as ProxyEvent),
    };
  }

  /** The full comparison; fails with what differs. */
  async assertIdentical(what: string): Promise<void> {
    const c = await compareDisks(this.disk, await this.replica(), this.size, DISK);
    assert.ok(
      c.identical,
      `${what}: replica differs — whole ${c.sourceHash.slice(0, 12)} vs ${c.replicaHash.slice(0, 12)}, ` +
        `${c.differentBlocks} blocks differ (first ${c.firstDifferent.join(", ")}), ` +
        `${c.replica.badCount} replica blocks fail their own check (first ${c.replica.bad.join(", ")})`,
    );
    assert.ok(c.replica.valid > 0, "the workload wrote self-verifying blocks");
  }

  async meta(): Promise<{ resumeOffset: number; durableSeq: number }> {
    return JSON.parse(await readFile(join(this.dataDir, "volumes", SERVER, DISK, "meta.json"), "utf8")) as {
      resumeOffset: number;
      durableSeq: number;
    };
  }
}

interface FaultProxyProcess {
  process: NsProcess;
  set(fault: Fault): Promise<void>;
  events(): ProxyEvent[];
}

/** Runs `body` in a fresh world; everything is torn down whatever happens. */
async function inWorld(
  size: number,
  workload: { zeroShare?: number; textShare?: number },
  body: (w: World) => Promise<void>,
): Promise<void> {
  const scratch = await createScratch("ferry-faults-");
  let pair: NetPair | undefined;
  try {
    pair = await createNetPair();
    const w = new World(pair, scratch, size);
    await writeWorkload(w.disk, { diskId: DISK, size, ...workload });
    await w.startReplicator();
    await body(w);
  } finally {
    try {
      await pair?.close();
    } finally {
      await scratch.cleanup();
    }
  }
}

function progressOf(agent: NsProcess): Progress[] {
  return agent.stdout
    .map((l) => JSON.parse(l.text) as { event: string })
    .filter((e): e is Progress => e.event === "progress");
}

/** Waits (bounded) until the agent reports at least `bytes` durable on the replicator. */
async function ackedAtLeast(agent: NsProcess, bytes: number, timeoutMs = 30000): Promise<number> {
  const line = await agent.waitLine(
    "stdout",
    (l) => {
      const e = JSON.parse(l) as Progress;
      return e.event === "progress" && e.ackedOffset >= bytes;
    },
    timeoutMs,
  );
  return (JSON.parse(line.text) as Progress).ackedOffset;
}

/** The last durable offset the agent saw acknowledged. */
function lastAcked(agent: NsProcess): number {
  return Math.max(0, ...progressOf(agent).map((p) => p.ackedOffset));
}

/** Waits (bounded) for the agent to finish; it must exit 0 with a result. */
async function agentDone(agent: NsProcess, timeoutMs: number): Promise<DiskResult> {
  const line = await agent.waitLine("stdout", (l) => l.includes('"event":"done"'), timeoutMs);
  const code = await Promise.race([agent.exited, sleep(10000).then(() => "no exit")]);
  assert.equal(code, 0, `the agent exited ${code}`);
  return (JSON.parse(line.text) as { disks: DiskResult[] }).disks[0]!;
}

/** JSON log lines of a process's stderr (the agent logs warnings, the replicator sessions). */
function logs(p: NsProcess): LogLine[] {
  const out: LogLine[] = [];
  for (const l of p.stderr) {
    try {
      out.push({ ...(JSON.parse(l.text) as Omit<LogLine, "at">), at: l.at });
    } catch {
      // not a log line
    }
  }
  return out;
}

/** Sessions the replicator started after `since`. */
function sessionsSince(rep: NsProcess, since: number): LogLine[] {
  return logs(rep).filter((l) => l.msg === "session started" && l.at >= since);
}

const skip = haveRoot() ? false : "needs root: network namespaces, iptables, tc";

describe("fault matrix (quality.md rows 1–10) in network namespaces", { skip }, () => {
  test("1. clean run: identical", async () => {
    await inWorld(32 * MiB, {}, async (w) => {
      const agent = w.startAgent();
      const r = await agentDone(agent, 60000);
      assert.equal(r.mode, "initial");
      assert.equal(r.reconnects, 0);
      await w.assertIdentical("clean run");
    });
  });

  test("2. 5% packet loss both ways: completes, identical", async () => {
    await inWorld(16 * MiB, {}, async (w) => {
      const { pair } = w;
      // One segment per packet (no 64 KiB GSO super-packets): the loss hits real packets, as on a wire.
      for (const side of ["source", "staging"] as const) {
        await pair.exec(side, "ip", ["link", "set", pair.dev[side], "gso_max_segs", "1"]);
      }
      for (const chain of [
        ["INPUT", "-i"],
        ["OUTPUT", "-o"],
      ] as const) {
        await pair.iptables("source", [
          "-A",
          chain[0],
          chain[1],
          pair.dev.source,
          "-m",
          "statistic",
          "--mode",
          "random",
          "--probability",
          "0.05",
          "-j",
          "DROP",
        ]);
      }
      // Lost heartbeats are retransmitted with TCP's backoff: give silence more room than the other rows.
      const agent = w.startAgent({ idleMs: 8000 });
      const r = await agentDone(agent, 90000);
      assert.equal(r.mode, "initial");
      const counters = await pair.exec("source", "iptables", ["-L", "-v", "-x", "-n"]);
      const dropped = [...counters.matchAll(/^\s*(\d+)\s+\d+\s+DROP/gm)].map((m) => Number(m[1]));
      assert.equal(dropped.length, 2);
      assert.ok(
        dropped.every((n) => n >= 10),
        `both directions lost packets: ${dropped.join(", ")}`,
      );
      await w.assertIdentical("5% loss");
    });
  });

  test("3. bandwidth cap (tc tbf): throttled, stable, identical", async () => {
    const capMbps = 40;
    const size = 24 * MiB;
    await inWorld(size, { zeroShare: 0, textShare: 0 }, async (w) => {
      const { pair } = w;
      await pair.tc("source", [
        "qdisc",
        "add",
        "dev",
        pair.dev.source,
        "root",
        "tbf",
        "rate",
        `${capMbps}mbit`,
        "burst",
        "64kb",
        "latency",
        "100ms",
      ]);
      const agent = w.startAgent();
      const r = await agentDone(agent, 60000);
      const capBytes = (capMbps * 1e6) / 8;
      const rate = r.wireBytes / r.seconds;
      assert.equal(r.reconnects, 0, "stable: no reconnects under the cap");
      assert.ok(rate <= capBytes * 1.1, `throttled: ${(rate / 1e6).toFixed(2)} MB/s ≤ the cap`);
      assert.ok(rate >= capBytes * 0.5, `stable: ${(rate / 1e6).toFixed(2)} MB/s uses the link`);
      const stats = await pair.exec("source", "tc", ["-s", "qdisc", "show", "dev", pair.dev.source]);
      assert.match(stats, /overlimits [1-9]/, "the cap was reached");
      await w.assertIdentical("bandwidth cap");
    });
  });

  test("4. blackhole mid-stream: the heartbeat notices within a bound; resume from the last durable ack; identical", async () => {
    await inWorld(32 * MiB, { zeroShare: 0, textShare: 0.2 }, async (w) => {
      const { pair } = w;
      const agent = w.startAgent({ bandwidth: 40 });
      await ackedAtLeast(agent, 6 * MiB);
      const drop = [
        ["INPUT", "--dport"],
        ["OUTPUT", "--sport"],
      ].map(([chain, port]) => [chain!, "-p", "tcp", port!, String(PORT), "-j", "DROP"]);
      for (const rule of drop) await pair.iptables("staging", ["-I", ...rule]);
      const t0 = Date.now();
      const ackedBefore = lastAcked(agent);
      const noticed = await agent.waitLine("stderr", (l) => l.includes("PEER_SILENT"), IDLE_MS + 5000);
      const detectMs = noticed.at - t0;
      assert.ok(detectMs <= IDLE_MS + 1000, `noticed after ${detectMs} ms (idle timeout ${IDLE_MS} ms)`);
      // The replicator's side of the same connection times out the same way.
      const ended = await w.replicator!.waitLine(
        "stderr",
        (l) => l.includes("session ended") && l.includes("nothing received"),
        IDLE_MS + 5000,
      );
      assert.ok(ended.at - t0 <= IDLE_MS + 1000, `the replicator noticed after ${ended.at - t0} ms`);
      await sleep(Math.max(0, BLACKHOLE_S * 1000 - (Date.now() - t0)));
      for (const rule of drop) await pair.iptables("staging", ["-D", ...rule]);
      const reopened = Date.now();
      const r = await agentDone(agent, 60000 + BLACKHOLE_S * 1000);
      assert.ok(r.reconnects >= 1);
      const resumed = sessionsSince(w.replicator!, reopened - 500);
      assert.ok(resumed.length >= 1, "a new session after the blackhole");
      assert.equal(resumed[0]!.mode, "RESUME");
      assert.ok(
        resumed[0]!.resumeOffset! >= ackedBefore,
        `resumed from ${resumed[0]!.resumeOffset}, at or after the last ack the agent saw (${ackedBefore})`,
      );
      await w.assertIdentical("blackhole");
    });
  });

  test("5. security group removes 1500 (DROP new): a clear error naming the path within a bound; catches up when reopened", async () => {
    await inWorld(16 * MiB, {}, async (w) => {
      const { pair } = w;
      const rule = [
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        String(PORT),
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "DROP",
      ];
      await pair.iptables("staging", ["-I", ...rule]);
      const started = Date.now();
      const agent = w.startAgent();
      const where = `${pair.addr.staging}:${PORT}`;
      const err = await agent.waitLine("stderr", (l) => l.includes("REPLICATOR_TIMEOUT"), 20000);
      const line = logs(agent).find((l) => l.code === "REPLICATOR_TIMEOUT")!;
      assert.ok(line.error!.includes(where), `the error names ${where}: ${line.error}`);
      assert.match(line.error!, /firewall or security group/);
      // Start-up of the agent process plus one connect timeout.
      assert.ok(err.at - started <= CONNECT_MS + 8000, `reported after ${err.at - started} ms`);
      await pair.iptables("staging", ["-D", ...rule]);
      const r = await agentDone(agent, 60000);
      assert.ok(r.reconnects >= 1);
      assert.equal(r.mode, "initial");
      await w.assertIdentical("security group reopened");
    });
  });

  test("6. RST mid-frame, ten times: quick reconnects, identical", async () => {
    await inWorld(32 * MiB, { zeroShare: 0.1, textShare: 0.3 }, async (w) => {
      const proxy = await w.startProxy();
      const resets = 10;
      // More resets in a row than the default budget of 8 failed attempts: each connection makes progress first.
      await proxy.set({ kind: "reset", afterBytes: 1.5 * MiB + 12345, times: resets });
      const agent = w.startAgent({ port: PROXY_PORT, window: 1 });
      const r = await agentDone(agent, 90000);
      const events = proxy.events();
      const resetEvents = events.filter((e) => e.event === "reset");
      assert.equal(resetEvents.length, resets);
      assert.ok(r.reconnects >= resets, `${r.reconnects} reconnects`);
      // Quick: the next connection arrives soon after each reset.
      for (const e of resetEvents) {
        if (e.event !== "reset") continue;
        const next = events.find((x) => x.event === "connection" && x.id === e.id + 1);
        assert.ok(next && next.event === "connection", `a connection after reset ${e.id}`);
        assert.ok(next.at - e.at < 2000, `reconnected ${next.at - e.at} ms after reset ${e.id}`);
      }
      await w.assertIdentical("RST mid-frame");
    });
  });

  test("7. link down: resume, identical", async () => {
    await inWorld(32 * MiB, { zeroShare: 0, textShare: 0.2 }, async (w) => {
      const { pair } = w;
      const agent = w.startAgent({ bandwidth: 40 });
      await ackedAtLeast(agent, 6 * MiB);
      await pair.link("source", "down");
      const t0 = Date.now();
      const ackedBefore = lastAcked(agent);
      try {
        await agent.waitLine("stderr", (l) => l.includes("connection lost"), IDLE_MS + 5000);
        assert.ok(Date.now() - t0 <= IDLE_MS + 2000, "the lost link was noticed within the idle timeout");
        await sleep(Math.max(0, LINK_DOWN_S * 1000 - (Date.now() - t0)));
      } finally {
        await pair.link("source", "up");
      }
      const up = Date.now();
      const r = await agentDone(agent, 60000 + LINK_DOWN_S * 1000);
      assert.ok(r.reconnects >= 1);
      const resumed = sessionsSince(w.replicator!, up - 500);
      assert.ok(resumed.length >= 1 && resumed[0]!.mode === "RESUME", "resumed after the link came back");
      assert.ok(resumed[0]!.resumeOffset! >= ackedBefore);
      await w.assertIdentical("link down");
    });
  });

  test("8. corrupted bytes in the stream: detected by TLS, never applied, resent, identical", async () => {
    await inWorld(24 * MiB, { zeroShare: 0.1, textShare: 0.3 }, async (w) => {
      const proxy = await w.startProxy();
      const corruptions = 3;
      await proxy.set({ kind: "corrupt", afterBytes: 2 * MiB + 777, times: corruptions });
      const agent = w.startAgent({ port: PROXY_PORT, window: 2 });
      const r = await agentDone(agent, 90000);
      assert.equal(proxy.events().filter((e) => e.event === "corrupted").length, corruptions);
      assert.ok(r.reconnects >= corruptions, `${r.reconnects} reconnects`);
      // The replicator's TLS layer refused each damaged record and ended the session.
      const refused = logs(w.replicator!).filter(
        (l) => l.msg === "session ended" && /bad record mac|decrypt|ssl|tls/i.test(l.error ?? ""),
      );
      assert.equal(refused.length, corruptions, JSON.stringify(logs(w.replicator!).slice(-8)));
      await w.assertIdentical("corrupted stream");
    });
  });

  test("9. agent kill -9 mid-batch: restart resumes; a rescan sends what it could not know; identical", async () => {
    const size = 32 * MiB;
    await inWorld(size, { zeroShare: 0.1, textShare: 0.3 }, async (w) => {
      const first = w.startAgent({ bandwidth: 40 });
      await ackedAtLeast(first, 8 * MiB);
      await first.kill("SIGKILL");
      const acked = lastAcked(first);
      // Writes while no agent runs, in the part already replicated: nothing tracked them.
      const changed = await mutateWorkload(w.disk, {
        diskId: DISK,
        size,
        generation: 2,
        count: 20,
        within: [0, acked],
      });
      const second = await agentDone(w.startAgent(), 60000);
      assert.equal(second.mode, "resume");
      assert.ok(second.resumedFrom >= acked, `resumed from ${second.resumedFrom} ≥ ${acked}`);
      assert.ok(second.dataBytes <= size - acked, "only what was not durable was sent again");
      const after = await compareDisks(w.disk, await w.replica(), size, DISK);
      assert.equal(after.replica.badCount, 0, "no damaged block in the replica");
      assert.ok(after.differentBlocks <= changed.length, "only the untracked writes differ");
      // A run after a completed sync without a tracker rescans: read everything, send only what differs.
      const third = await agentDone(w.startAgent(), 60000);
      assert.equal(third.mode, "rescan");
      const groups = new Set(changed.map((o) => Math.floor(o / (64 * 1024)))).size;
      assert.equal(third.dataBytes, groups * 64 * 1024, "the rescan sent exactly the changed blocks");
      await w.assertIdentical("agent kill -9");
    });
  });

  test("10. replicator kill -9 and restart: no acknowledged write lost, no torn write, identical", async () => {
    const size = 32 * MiB;
    await inWorld(size, { zeroShare: 0.1, textShare: 0.3 }, async (w) => {
      const agent = w.startAgent({ bandwidth: 40 });
      await ackedAtLeast(agent, 8 * MiB);
      await w.replicator!.kill("SIGKILL");
      const acked = lastAcked(agent);
      const m = await w.meta();
      assert.ok(m.resumeOffset >= acked, `durable point ${m.resumeOffset} ≥ acknowledged ${acked}`);
      const prefix = await compareDisks(w.disk, await w.replica(), acked, DISK);
      assert.ok(
        prefix.identical,
        `every acknowledged byte is in the replica (${prefix.differentBlocks} blocks differ)`,
      );
      const whole = await checkBlocks(await w.replica(), DISK, size);
      assert.equal(
        whole.badCount,
        0,
        `no torn block anywhere in the replica (first ${whole.bad.join(", ")})`,
      );
      const restarted = Date.now();
      const rep = await w.startReplicator();
      const r = await agentDone(agent, 60000);
      assert.ok(r.reconnects >= 1);
      const resumed = sessionsSince(rep, restarted);
      assert.ok(resumed.length >= 1 && resumed[0]!.mode === "RESUME");
      assert.ok(resumed[0]!.resumeOffset! >= acked);
      await w.assertIdentical("replicator kill -9");
    });
  });
});
