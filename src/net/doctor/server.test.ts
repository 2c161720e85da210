import { test } from "node:test";
import assert from "node:assert/strict";
import type { ReplicatorRecord } from "../../model/replicator.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import { renderReport } from "./report.ts";
import { runServerDoctor } from "./server.ts";

const NOW = Date.parse("2026-11-25T05:00:00Z");

function server(id: string, agent: Partial<SourceServerRecord["agent"]>): SourceServerRecord {
  return {
    sourceServerID: id,
    isArchived: false,
    replication: { control: "RUNNING" },
    agent: { identity: id, registeredAt: NOW - 600_000, ...agent },
  } as SourceServerRecord;
}

const replicator = (name: string, lastSeenAt: number): ReplicatorRecord => ({
  replicatorId: `i-${name.padEnd(17, "0")}`,
  name,
  privateAddress: "10.20.0.30:1500",
  certFingerprint: "AA",
  stagingAreaSubnetId: "",
  registeredAt: NOW - 600_000,
  lastSeenAt,
});

test("the server's view: heartbeats that stopped (F2, F4) and the flows agents report failing", () => {
  const f7 = {
    flow: "F7" as const,
    ok: false as const,
    observed: "TCP 1500 to the replicator at 10.20.0.30: no answer (timed out: the packets are dropped)",
    cause: "the replicator's security group drops TCP 1500 from the source (no rule allows it)",
    fix: "allow TCP 1500 from the source",
    code: "SG_1500_MISSING",
    at: "2026-11-25T04:59:50.000Z",
  };
  const findings = runServerDoctor({
    now: NOW,
    notSeenAfterMs: 60_000,
    replicatorNotSeenAfterMs: 60_000,
    replicators: [replicator("alive", NOW - 5_000), replicator("gone", NOW - 300_000)],
    sourceServers: [
      server("s-aaaaaaaaaaaaaaaaa", { lastSeenAt: NOW - 5_000, failedFlow: f7 }),
      server("s-bbbbbbbbbbbbbbbbb", { lastSeenAt: NOW - 120_000 }),
      server("s-ccccccccccccccccc", { lastSeenAt: NOW - 1_000 }),
    ],
  });
  const failing = findings.filter((f) => !f.ok).map((f) => [f.flow, f.code]);
  assert.deepEqual(failing, [
    ["F2", "AGENT_NOT_SEEN"],
    ["F4", "REPLICATOR_NOT_SEEN"],
    ["F7", "SG_1500_MISSING"],
  ]);
  const text = renderReport(findings);
  assert.match(
    text,
    /✗ F2 .*\[AGENT_NOT_SEEN\]\n {4}observed: no report from the agent of s-bbbbbbbbbbbbbbbbb since 2026-11-25T04:58:00\.000Z \(120 s ago; AGENT_NOT_SEEN after 60 s\)/,
  );
  assert.match(
    text,
    /observed: no heartbeat from replicator gone \(i-gone\d+\) since 2026-11-25T04:55:00\.000Z \(300 s ago; counted as gone after 60 s\)/,
  );
  assert.match(text, /observed: s-aaaaaaaaaaaaaaaaa \(reported 2026-11-25T04:59:50.000Z\): TCP 1500/);
  assert.match(text, /3 flow\(s\) failing\n$/);
});

test("the server's view when everything reports: every flow passes", () => {
  const findings = runServerDoctor({
    now: NOW,
    notSeenAfterMs: 60_000,
    replicatorNotSeenAfterMs: 60_000,
    replicators: [replicator("alive", NOW - 5_000)],
    sourceServers: [server("s-aaaaaaaaaaaaaaaaa", { lastSeenAt: NOW - 5_000 })],
  });
  assert.deepEqual(
    findings.map((f) => [f.flow, f.ok]),
    [
      ["F2", true],
      ["F4", true],
      ["F7", true],
    ],
  );
  assert.match(renderReport(findings), /all flows open\n$/);
});

test("the server's view of an agent whose signatures were refused for clock skew: F2 says clock skew, not just silence", () => {
  const skew = {
    flow: "F2" as const,
    ok: false as const,
    observed: "the server's clock is 3600 s ahead of this host's",
    cause: "clock skew between this host and the control plane",
    fix: "synchronise both clocks with NTP",
    code: "CLOCK_SKEW",
    at: "2026-11-25T04:59:00.000Z",
  };
  const findings = runServerDoctor({
    now: NOW,
    notSeenAfterMs: 60_000,
    replicatorNotSeenAfterMs: 60_000,
    replicators: [replicator("alive", NOW - 5_000)],
    sourceServers: [server("s-aaaaaaaaaaaaaaaaa", { lastSeenAt: NOW - 120_000, failedFlow: skew })],
  });
  const f2 = findings.find((f) => f.flow === "F2")!;
  assert.equal(f2.ok, false);
  assert.equal(f2.code, "CLOCK_SKEW");
  assert.match(
    f2.observed,
    /^no report from the agent of s-aaaaaaaaaaaaaaaaa since .* \(120 s ago; .*\); the control plane refused its request at 2026-11-25T04:59:00\.000Z: .*3600 s ahead/,
  );
});

test("replicators are judged by their own threshold: a short agent threshold does not drop a live replicator", () => {
  const findings = runServerDoctor({
    now: NOW,
    notSeenAfterMs: 5_000,
    replicatorNotSeenAfterMs: 30_000,
    // Heartbeats every 10 s: 12 s since the last one is alive; 31 s is three missed.
    replicators: [replicator("alive", NOW - 12_000), replicator("late", NOW - 31_000)],
    sourceServers: [server("s-aaaaaaaaaaaaaaaaa", { lastSeenAt: NOW - 6_000 })],
  });
  const failing = findings.filter((f) => !f.ok);
  assert.deepEqual(
    failing.map((f) => [f.flow, f.code]),
    [
      ["F2", "AGENT_NOT_SEEN"],
      ["F4", "REPLICATOR_NOT_SEEN"],
    ],
  );
  assert.match(failing[1]!.observed, /^no heartbeat from replicator late /);
});
