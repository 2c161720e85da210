import { test } from "node:test";
import assert from "node:assert/strict";
import { isoDuration } from "./duration.ts";
import {
  ID_PATTERNS,
  newJobId,
  newReplicationConfigurationTemplateId,
  newSourceServerId,
  parseResourceArn,
  resourceArn,
} from "./ids.ts";
import type { SourceServerRecord } from "./source-server.ts";
import { computeDataReplicationInfo, sourceServerJson, toSourceServer } from "./source-server.ts";
import { applyAgentReport } from "./agent-report.ts";
import * as L from "./lifecycle.ts";
import { FerryError } from "../lib/errors.ts";
import { SourceServerID, JobID, ReplicationConfigurationTemplateID } from "./mgn-shapes.gen.ts";

test("ids match MGN's patterns (ours and the generated schema's)", () => {
  for (let i = 0; i < 200; i++) {
    const s = newSourceServerId();
    assert.match(s, ID_PATTERNS.sourceServer);
    assert.ok(SourceServerID.safeParse(s).success);
    assert.ok(ReplicationConfigurationTemplateID.safeParse(newReplicationConfigurationTemplateId()).success);
    assert.ok(JobID.safeParse(newJobId()).success);
  }
  assert.equal(SourceServerID.safeParse("s-123").success, false);
  assert.equal(SourceServerID.safeParse("xs-0123456789abcdef0").success, false, "patterns are anchored");
  const arn = resourceArn("eu-west-1", "123456789012", "source-server", "s-0123456789abcdef0");
  assert.deepEqual(parseResourceArn(arn), {
    region: "eu-west-1",
    accountId: "123456789012",
    kind: "source-server",
    id: "s-0123456789abcdef0",
  });
  assert.equal(parseResourceArn("arn:aws:s3:::bucket/../x"), undefined);
});

test("ISO 8601 durations", () => {
  assert.equal(isoDuration(0), "PT0S");
  assert.equal(isoDuration(61_000), "PT1M1S");
  assert.equal(isoDuration(3_600_000), "PT1H");
  assert.equal(isoDuration(90_061_000), "P1DT1H1M1S");
  assert.equal(isoDuration(-5), "PT0S");
});

function rec(now: number): SourceServerRecord {
  return {
    sourceServerID: "s-0123456789abcdef0",
    arn: "arn:aws:mgn:us-east-1:000000000000:source-server/s-0123456789abcdef0",
    isArchived: false,
    tags: {},
    replicationType: "AGENT_BASED",
    sourceProperties: { disks: [{ deviceName: "/dev/sda", bytes: 1000 }] },
    lifeCycle: { state: "NOT_READY" },
    replication: { control: "RUNNING", startedAt: now },
    agent: { identity: "machine-x", registeredAt: now },
    replicationConfiguration: {},
    launchConfiguration: {},
  };
}

const OPTS = { agentNotSeenAfterMs: 60_000 };
const disk = (replicated: number, backlog = 0, rescanned = 0) => [
  {
    deviceName: "/dev/sda",
    totalStorageBytes: 1000,
    replicatedStorageBytes: replicated,
    rescannedStorageBytes: rescanned,
    backloggedStorageBytes: backlog,
  },
];

test("replication state: INITIATING, then reports, ETA from the smoothed rate, AGENT_NOT_SEEN at the bound", () => {
  const t0 = 1_000_000;
  let r = rec(t0);
  const first = computeDataReplicationInfo(r, t0, OPTS);
  assert.equal(first.dataReplicationState, "INITIATING");
  assert.equal(first.replicatedDisks?.[0]?.totalStorageBytes, 1000, "disks from the source properties");
  r = applyAgentReport(
    r,
    { sourceServerID: r.sourceServerID, dataReplicationState: "INITIAL_SYNC", replicatedDisks: disk(100) },
    t0 + 1000,
  );
  r = applyAgentReport(
    r,
    { sourceServerID: r.sourceServerID, dataReplicationState: "INITIAL_SYNC", replicatedDisks: disk(200) },
    t0 + 2000,
  );
  const sync = computeDataReplicationInfo(r, t0 + 2000, OPTS);
  assert.equal(Date.parse(sync.etaDateTime!) - (t0 + 2000), 8000, "800 bytes left at 100 B/s");
  assert.equal(sync.lagDuration, undefined, "lag unknown before continuous replication");
  assert.equal(computeDataReplicationInfo(r, t0 + 2000 + 60_000, OPTS).dataReplicationState, "INITIAL_SYNC");
  const stalled = computeDataReplicationInfo(r, t0 + 2000 + 60_001, OPTS);
  assert.equal(stalled.dataReplicationState, "STALLED");
  assert.equal(stalled.dataReplicationError?.error, "AGENT_NOT_SEEN");
  r = applyAgentReport(
    r,
    { sourceServerID: r.sourceServerID, dataReplicationState: "CONTINUOUS", replicatedDisks: disk(1000, 50) },
    t0 + 3000,
  );
  assert.equal(r.lifeCycle.state, "NOT_READY", "a backlog means not yet caught up");
  r = applyAgentReport(
    r,
    { sourceServerID: r.sourceServerID, dataReplicationState: "CONTINUOUS", replicatedDisks: disk(1000) },
    t0 + 4000,
  );
  assert.equal(r.lifeCycle.state, "READY_FOR_TEST");
  assert.equal(computeDataReplicationInfo(r, t0 + 4000, OPTS).lagDuration, "PT0S");
  r = applyAgentReport(
    r,
    { sourceServerID: r.sourceServerID, dataReplicationState: "BACKLOG", replicatedDisks: disk(1000, 10) },
    t0 + 5000,
  );
  assert.equal(
    computeDataReplicationInfo(r, t0 + 9000, OPTS).lagDuration,
    "PT5S",
    "time since last continuous",
  );
  r = applyAgentReport(
    r,
    {
      sourceServerID: r.sourceServerID,
      dataReplicationState: "STALLED",
      dataReplicationError: {
        error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
        rawError: "ECONNREFUSED",
      },
    },
    t0 + 6000,
  );
  assert.equal(
    computeDataReplicationInfo(r, t0 + 6000, OPTS).dataReplicationError?.error,
    "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
  );
});

function conflictOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError);
    return err.code;
  }
  return "none";
}

test("lifecycle rules refuse with ConflictException and never mutate their input", () => {
  const now = 5_000_000;
  const r = rec(now);
  const frozen = structuredClone(r);
  assert.equal(
    conflictOf(() => L.resumeReplication(r, now)),
    "ConflictException",
  );
  assert.equal(
    conflictOf(() => L.startReplication(r, now)),
    "ConflictException",
  );
  assert.equal(
    conflictOf(() => L.markAsArchived(r)),
    "ConflictException",
  );
  assert.equal(
    conflictOf(() => L.assertDeletable(r)),
    "ConflictException",
  );
  assert.equal(
    conflictOf(() => L.changeLifeCycleState(r, "READY_FOR_CUTOVER")),
    "ConflictException",
  );
  assert.equal(
    conflictOf(() => L.retryDataReplication(r, now, OPTS)),
    "ConflictException",
  );
  const paused = L.pauseReplication(r, now);
  assert.equal(paused.replication.control, "PAUSED");
  assert.deepEqual(r, frozen, "input unchanged");
  const d = L.disconnectFromService(paused, now);
  assert.equal(
    conflictOf(() => L.resumeReplication(d, now)),
    "ConflictException",
  );
  assert.equal(L.markAsArchived(d).isArchived, true);
  const launchable = {
    ...structuredClone(r),
    agent: { ...r.agent, initialSyncCompletedAt: now },
    lifeCycle: { state: "READY_FOR_TEST" as const },
  };
  assert.equal(L.changeLifeCycleState(launchable, "READY_FOR_CUTOVER").lifeCycle.state, "READY_FOR_CUTOVER");
});

test("sourceServerJson is JSON.stringify(toSourceServer(…)), also after the record changes", () => {
  const t0 = 2_000_000;
  let r = rec(t0);
  for (const [at, body] of [
    [t0, undefined],
    [t0 + 1000, { dataReplicationState: "INITIAL_SYNC" as const, replicatedDisks: disk(10) }],
    [t0 + 9000, { dataReplicationState: "CONTINUOUS" as const, replicatedDisks: disk(1000) }],
  ] as const) {
    if (body) r = applyAgentReport(r, { sourceServerID: r.sourceServerID, ...body }, at);
    for (const now of [at, at + 70_000]) {
      assert.deepEqual(
        JSON.parse(sourceServerJson(r, now, OPTS)),
        JSON.parse(JSON.stringify(toSourceServer(r, now, OPTS))),
      );
    }
  }
});
