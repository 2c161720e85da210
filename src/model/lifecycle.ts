/**
 * MGN's lifecycle rules, as pure functions over a stored source server: each
 * returns the next record or throws the ConflictException MGN answers with.
 */
import type { SourceServerRecord, ReplicationStateOptions } from "./source-server.ts";
import { computeDataReplicationInfo } from "./source-server.ts";
import type { ChangeServerLifeCycleStateSourceServerLifecycleState } from "./mgn-shapes.gen.ts";
import { conflict } from "./api-errors.ts";
import { isoDateTime } from "./duration.ts";

type Rec = SourceServerRecord;

function refuse(r: Rec, message: string): never {
  throw conflict(
    "SOURCE_SERVER",
    r.sourceServerID,
    `${message} (source server ${r.sourceServerID}, lifecycle state ${r.lifeCycle.state}, replication ${r.replication.control}).`,
  );
}

function requireConnected(r: Rec, op: string): void {
  if (r.isArchived) refuse(r, `${op} refused: the source server is archived`);
  if (
    r.replication.control === "DISCONNECTED" ||
    r.lifeCycle.state === "DISCONNECTED" ||
    r.lifeCycle.state === "CUTOVER"
  ) {
    refuse(
      r,
      `${op} refused: the source server is disconnected from the service; reinstall the agent to replicate it again`,
    );
  }
}

function clone(r: Rec): Rec {
  return structuredClone(r);
}

export function startReplication(r: Rec, now: number): Rec {
  requireConnected(r, "StartReplication");
  if (r.replication.control !== "STOPPED")
    refuse(
      r,
      "StartReplication refused: replication is not stopped; use ResumeReplication for a paused server",
    );
  const n = clone(r);
  n.replication = { control: "RUNNING", startedAt: now };
  n.agent.state = "INITIATING";
  delete n.agent.error;
  n.lifeCycle.state = n.agent.initialSyncCompletedAt !== undefined ? "READY_FOR_TEST" : "NOT_READY";
  return n;
}

export function stopReplication(r: Rec, _now: number): Rec {
  requireConnected(r, "StopReplication");
  if (r.replication.control === "STOPPED")
    refuse(r, "StopReplication refused: replication is already stopped");
  const n = clone(r);
  n.replication = { control: "STOPPED" };
  n.lifeCycle.state = "STOPPED";
  return n;
}

export function pauseReplication(r: Rec, _now: number): Rec {
  requireConnected(r, "PauseReplication");
  if (r.replication.control !== "RUNNING") refuse(r, "PauseReplication refused: replication is not running");
  const n = clone(r);
  n.replication = { ...n.replication, control: "PAUSED" };
  return n;
}

export function resumeReplication(r: Rec, _now: number): Rec {
  requireConnected(r, "ResumeReplication");
  if (r.replication.control !== "PAUSED") refuse(r, "ResumeReplication refused: replication is not paused");
  const n = clone(r);
  n.replication = { ...n.replication, control: "RUNNING" };
  return n;
}

export function retryDataReplication(r: Rec, now: number, opts: ReplicationStateOptions): Rec {
  requireConnected(r, "RetryDataReplication");
  const state = computeDataReplicationInfo(r, now, opts).dataReplicationState;
  if (state !== "STALLED")
    refuse(
      r,
      `RetryDataReplication refused: data replication is ${state}, retry is only for STALLED replication`,
    );
  const n = clone(r);
  n.replication = { control: "RUNNING", startedAt: now };
  // A retry starts a new initiation: the agent gets a fresh window to report.
  n.agent.state = "INITIATING";
  delete n.agent.error;
  n.agent.lastSeenAt = Math.max(n.agent.lastSeenAt ?? 0, now);
  delete n.agent.steps;
  return n;
}

export function changeLifeCycleState(
  r: Rec,
  state: ChangeServerLifeCycleStateSourceServerLifecycleState,
  now: number = Date.now(),
): Rec {
  if (r.isArchived) refuse(r, "ChangeServerLifeCycleState refused: the source server is archived");
  if (r.agent.initialSyncCompletedAt === undefined) {
    refuse(
      r,
      "ChangeServerLifeCycleState refused: the source server is not launchable yet (its initial sync has not completed, so its lag is unknown)",
    );
  }
  const from = r.lifeCycle.state;
  if (!["READY_FOR_TEST", "TESTING", "READY_FOR_CUTOVER", "CUTTING_OVER"].includes(from)) {
    refuse(r, `ChangeServerLifeCycleState refused: cannot move from ${from} to ${state}`);
  }
  const n = clone(r);
  n.lifeCycle.state = state;
  // MGN's console words: "revert to ready for testing" and "mark as ready for cutover".
  if (from === "TESTING" && state === "READY_FOR_TEST" && n.lifeCycle.lastTest)
    n.lifeCycle.lastTest.reverted = { apiCallDateTime: isoDateTime(now) };
  if (from === "TESTING" && state === "READY_FOR_CUTOVER" && n.lifeCycle.lastTest)
    n.lifeCycle.lastTest.finalized = { apiCallDateTime: isoDateTime(now) };
  return n;
}

/** The states a launch of each kind may start from (a failed or repeated one may start again). */
const LAUNCH_FROM = {
  START_TEST: ["READY_FOR_TEST", "TESTING", "READY_FOR_CUTOVER"],
  START_CUTOVER: ["READY_FOR_TEST", "READY_FOR_CUTOVER", "CUTTING_OVER"],
} as const;

/** StartTest / StartCutover on one server: checked, then TESTING / CUTTING_OVER with the job recorded. */
export function startLaunch(
  r: Rec,
  kind: "START_TEST" | "START_CUTOVER",
  jobID: string,
  now: number,
  running: boolean,
): Rec {
  const op = kind === "START_TEST" ? "StartTest" : "StartCutover";
  requireConnected(r, op);
  if (r.agent.initialSyncCompletedAt === undefined)
    refuse(r, `${op} refused: the source server is not ready; wait for its initial sync to complete`);
  if (!(LAUNCH_FROM[kind] as readonly string[]).includes(r.lifeCycle.state))
    refuse(r, `${op} refused: cannot launch from ${r.lifeCycle.state}`);
  if (running) refuse(r, `${op} refused: a launch job for this server is still running; wait for it to end`);
  const n = clone(r);
  const mark = { initiated: { apiCallDateTime: isoDateTime(now), jobID } };
  if (kind === "START_TEST") {
    n.lifeCycle.state = "TESTING";
    n.lifeCycle.lastTest = mark;
  } else {
    n.lifeCycle.state = "CUTTING_OVER";
    n.lifeCycle.lastCutover = mark;
  }
  return n;
}

/** A launch job that failed for this server: back to where a retry can start. */
export function launchFailed(r: Rec, kind: "START_TEST" | "START_CUTOVER"): Rec {
  const n = clone(r);
  const during = kind === "START_TEST" ? "TESTING" : "CUTTING_OVER";
  if (n.lifeCycle.state === during)
    n.lifeCycle.state = kind === "START_TEST" ? "READY_FOR_TEST" : "READY_FOR_CUTOVER";
  return n;
}

/** TerminateTargetInstances: MGN refuses it while a launch is live or after cutover. */
export function assertTerminable(r: Rec): void {
  const s = r.lifeCycle.state;
  if (s === "TESTING" || s === "CUTTING_OVER" || s === "CUTOVER")
    refuse(
      r,
      `TerminateTargetInstances refused: not allowed in ${s}; to revert a test, first ChangeServerLifeCycleState to READY_FOR_TEST`,
    );
  if (!r.launchedInstance?.ec2InstanceID)
    refuse(r, "TerminateTargetInstances refused: the source server has no launched instance");
}

/**
 * FinalizeCutover: CUTOVER, replication disconnected; the agent is told to
 * uninstall itself on its next report (see `agentKeysDue`).
 */
export function finalizeCutover(r: Rec, now: number): Rec {
  if (r.isArchived) refuse(r, "FinalizeCutover refused: the source server is archived");
  if (r.lifeCycle.state !== "CUTTING_OVER")
    refuse(
      r,
      "FinalizeCutover refused: only a CUTTING_OVER source server can be finalized; call StartCutover first",
    );
  if (
    !r.launchedInstance?.ec2InstanceID ||
    r.launchedInstance.jobID !== r.lifeCycle.lastCutover?.initiated?.jobID
  )
    refuse(
      r,
      "FinalizeCutover refused: the cutover instance has not launched; wait for the StartCutover job to complete",
    );
  const n = clone(r);
  n.lifeCycle.state = "CUTOVER";
  n.lifeCycle.lastCutover = { ...n.lifeCycle.lastCutover, finalized: { apiCallDateTime: isoDateTime(now) } };
  n.replication = { control: "DISCONNECTED" };
  n.agent.uninstallRequestedAt = now;
  return n;
}

/**
 * DisconnectFromService: DISCONNECTED, replication disconnected, and — as
 * with FinalizeCutover — the agent told to uninstall itself on its next
 * report. Its keys stay valid until it acknowledges, or the grace period ends.
 */
export function disconnectFromService(r: Rec, now: number): Rec {
  if (r.lifeCycle.state === "DISCONNECTED" || r.lifeCycle.state === "CUTOVER")
    refuse(r, "DisconnectFromService refused: the source server is already disconnected");
  if (r.lifeCycle.state === "TESTING" || r.lifeCycle.state === "CUTTING_OVER")
    refuse(r, "DisconnectFromService refused: a launch is in progress; wait for it to finish");
  const n = clone(r);
  n.lifeCycle.state = "DISCONNECTED";
  n.replication = { control: "DISCONNECTED" };
  n.agent.uninstallRequestedAt = now;
  return n;
}

/** The agent must uninstall itself: the operator took the server out of replication for good. */
export function agentMustUninstall(r: Rec): boolean {
  return r.replication.control === "DISCONNECTED";
}

/** The agent said it uninstalled itself (only a disconnected server's agent may). */
export function agentUninstalled(r: Rec, now: number): Rec {
  if (!agentMustUninstall(r))
    refuse(
      r,
      "The agent may not uninstall: the source server is not disconnected; call DisconnectFromService or FinalizeCutover first",
    );
  const n = clone(r);
  n.agent.uninstalledAt ??= now;
  return n;
}

/**
 * The agent's keys are to be revoked: it acknowledged its uninstall, or it
 * was told to more than `graceMs` ago (an agent that never reports again
 * keeps no credentials). A server disconnected before this rule existed has
 * no request time: its keys are due at once.
 */
export function agentKeysDue(r: Rec, now: number, graceMs: number): boolean {
  if (!agentMustUninstall(r)) return false;
  if (r.agent.uninstalledAt !== undefined) return true;
  return now - (r.agent.uninstallRequestedAt ?? -Infinity) >= graceMs;
}

export function markAsArchived(r: Rec): Rec {
  if (r.lifeCycle.state !== "DISCONNECTED" && r.lifeCycle.state !== "CUTOVER") {
    refuse(
      r,
      "MarkAsArchived refused: only a DISCONNECTED or CUTOVER source server can be archived; call DisconnectFromService first",
    );
  }
  const n = clone(r);
  n.isArchived = true;
  return n;
}

export function assertDeletable(r: Rec): void {
  if (r.lifeCycle.state !== "DISCONNECTED" && r.lifeCycle.state !== "CUTOVER") {
    refuse(
      r,
      "DeleteSourceServer refused: the source server must be disconnected first; call DisconnectFromService",
    );
  }
}
