/**
 * Folds an agent's report into the stored source server: heartbeat, state,
 * per-disk counters, a smoothed progress rate for the ETA, and the lifecycle
 * step MGN takes on its own (NOT_READY → READY_FOR_TEST once the initial sync
 * completes).
 */
import type { SourceServerRecord } from "./source-server.ts";
import type { AgentReportRequest } from "./agent-api.ts";
import { isoDateTime } from "./duration.ts";

/** Weight of the newest sample in the smoothed rate. */
const RATE_ALPHA = 0.3;

export function applyAgentReport(
  r: SourceServerRecord,
  report: AgentReportRequest,
  now: number,
): SourceServerRecord {
  const n = structuredClone(r);
  const a = n.agent;
  a.lastSeenAt = now;
  a.state = report.dataReplicationState;
  if (report.initiationSteps) a.steps = report.initiationSteps;
  if (report.replicatedDisks) a.disks = report.replicatedDisks;
  if (report.dataReplicationError) a.error = report.dataReplicationError;
  else delete a.error;
  if (report.failedFlow) a.failedFlow = report.failedFlow;
  else delete a.failedFlow;
  if (report.lastSnapshotDateTime) a.lastSnapshotDateTime = report.lastSnapshotDateTime;
  if (report.replicatorId) a.replicatorId = report.replicatorId;
  if (report.sourceProperties)
    n.sourceProperties = { ...report.sourceProperties, lastUpdatedDateTime: isoDateTime(now) };

  const disks = a.disks ?? [];
  const progressed = disks.reduce(
    (s, d) => s + (d.replicatedStorageBytes ?? 0) + (d.rescannedStorageBytes ?? 0),
    0,
  );
  if (a.progressSample && now > a.progressSample.at && progressed >= a.progressSample.bytes) {
    const inst = ((progressed - a.progressSample.bytes) * 1000) / (now - a.progressSample.at);
    a.rateBytesPerSecond =
      a.rateBytesPerSecond === undefined ? inst : a.rateBytesPerSecond * (1 - RATE_ALPHA) + inst * RATE_ALPHA;
  }
  a.progressSample = { at: now, bytes: progressed };

  if (!n.lifeCycle.firstByteDateTime && disks.some((d) => (d.replicatedStorageBytes ?? 0) > 0)) {
    n.lifeCycle.firstByteDateTime = isoDateTime(now);
  }
  const backlog = disks.reduce((s, d) => s + (d.backloggedStorageBytes ?? 0), 0);
  if (report.dataReplicationState === "CONTINUOUS" && backlog === 0) {
    a.lastContinuousAt = now;
    if (a.initialSyncCompletedAt === undefined) {
      a.initialSyncCompletedAt = now;
      if (n.lifeCycle.state === "NOT_READY") n.lifeCycle.state = "READY_FOR_TEST";
    }
  }
  return n;
}
