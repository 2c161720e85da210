/**
 * The stored form of a source server and its projection to MGN's
 * `SourceServer`. What the operator controls (`replication.control`) and what
 * the agent last reported (`agent`) are kept apart; `dataReplicationInfo` is
 * computed from both at read time, so AGENT_NOT_SEEN and lag need no timer.
 */
import type {
  DataReplicationInfo,
  DataReplicationInfoReplicatedDisk,
  DataReplicationInitiationStep,
  LaunchConfiguration,
  LaunchedInstance,
  LifeCycle,
  ReplicationConfiguration,
  SourceProperties,
  SourceServer,
} from "./mgn-shapes.gen.ts";
import type { AgentReplicationState, DesiredReplicationState } from "./agent-api.ts";
import { isoDateTime, isoDuration } from "./duration.ts";
import { formatFinding, type ObservedFlowFailure } from "./flows.ts";
import { agentNotSeenFlow } from "./flow-classify.ts";
import type { LaunchedInstanceDetails } from "./launch.ts";

export interface AgentStatus {
  identity: string;
  registeredAt: number;
  lastSeenAt?: number;
  state?: AgentReplicationState;
  steps?: DataReplicationInitiationStep[];
  disks?: DataReplicationInfoReplicatedDisk[];
  error?: {
    error: NonNullable<DataReplicationInfo["dataReplicationError"]>["error"];
    rawError?: string | undefined;
  };
  lastSnapshotDateTime?: string;
  replicatorId?: string;
  /** Replication progress rate in bytes/s (smoothed), for the ETA. */
  rateBytesPerSecond?: number;
  /** The previous report's replicated+rescanned byte count and time, for the rate. */
  progressSample?: { at: number; bytes: number };
  /** When the agent last reported CONTINUOUS with no backlog: the lag is measured from here. */
  lastContinuousAt?: number;
  /** When the initial sync first completed: the server is launchable from then on. */
  initialSyncCompletedAt?: number;
  /** The network flow the agent last reported failing (Ferry; see flows.ts). */
  failedFlow?: ObservedFlowFailure;
  /** FinalizeCutover / DisconnectFromService: when the agent was told to uninstall (its keys die after a grace period). */
  uninstallRequestedAt?: number;
  /** When the agent acknowledged that it uninstalled itself (its keys were revoked then). */
  uninstalledAt?: number;
}

export interface SourceServerRecord {
  sourceServerID: string;
  arn: string;
  isArchived: boolean;
  tags: Record<string, string>;
  userProvidedID?: string;
  replicationType: "AGENT_BASED";
  sourceProperties: SourceProperties;
  lifeCycle: LifeCycle & { state: NonNullable<LifeCycle["state"]> };
  replication: { control: DesiredReplicationState; startedAt?: number };
  /** The replicator the control plane assigned (see replicator.ts). */
  replicatorId?: string;
  agent: AgentStatus;
  replicationConfiguration: ReplicationConfiguration;
  launchConfiguration: LaunchConfiguration;
  /** The last test or cutover instance (MGN's shape; `ferry` says where it lives). */
  launchedInstance?: LaunchedInstance & { ferry?: LaunchedInstanceDetails };
}

export interface ReplicationStateOptions {
  /** No report for this long → STALLED with AGENT_NOT_SEEN. */
  agentNotSeenAfterMs: number;
  /**
   * A replicator with no heartbeat for this long is not assigned (its own threshold: at least
   * 3 heartbeats, whatever the agents' is). @default 60 s
   */
  replicatorNotSeenAfterMs?: number;
}

const STEP_ORDER = [
  "WAIT",
  "CREATE_SECURITY_GROUP",
  "LAUNCH_REPLICATION_SERVER",
  "BOOT_REPLICATION_SERVER",
  "AUTHENTICATE_WITH_SERVICE",
  "DOWNLOAD_REPLICATION_SOFTWARE",
  "CREATE_STAGING_DISKS",
  "ATTACH_STAGING_DISKS",
  "PAIR_REPLICATION_SERVER_WITH_AGENT",
  "CONNECT_AGENT_TO_REPLICATION_SERVER",
  "START_DATA_TRANSFER",
] as const;

/** The initiation steps right after registration: the agent has authenticated. */
export function initialSteps(): DataReplicationInitiationStep[] {
  return STEP_ORDER.map((name) => ({
    name,
    status: name === "AUTHENTICATE_WITH_SERVICE" || name === "WAIT" ? "SUCCEEDED" : "NOT_STARTED",
  }));
}

export function isDisconnected(r: SourceServerRecord): boolean {
  return r.lifeCycle.state === "DISCONNECTED" || r.lifeCycle.state === "CUTOVER";
}

export function computeDataReplicationInfo(
  r: SourceServerRecord,
  now: number,
  opts: ReplicationStateOptions,
): DataReplicationInfo {
  const a = r.agent;
  const disks =
    a.disks ??
    (r.sourceProperties.disks ?? []).map((d) => ({
      deviceName: d.deviceName ?? "",
      totalStorageBytes: d.bytes ?? 0,
      replicatedStorageBytes: 0,
      rescannedStorageBytes: 0,
      backloggedStorageBytes: 0,
    }));
  const base: DataReplicationInfo = { replicatedDisks: disks };
  if (a.lastSnapshotDateTime) base.lastSnapshotDateTime = a.lastSnapshotDateTime;
  const replicatorId = a.replicatorId ?? r.replicatorId;
  if (replicatorId) base.replicatorId = replicatorId;
  switch (r.replication.control) {
    case "DISCONNECTED":
      return { dataReplicationState: "DISCONNECTED" };
    case "STOPPED":
      return { ...base, dataReplicationState: "STOPPED" };
    case "PAUSED":
      return withLag({ ...base, dataReplicationState: "PAUSED" }, a, now);
    case "RUNNING":
      break;
  }
  const seen = a.lastSeenAt ?? a.registeredAt;
  if (now - seen > opts.agentNotSeenAfterMs) {
    return withLag(
      {
        ...base,
        dataReplicationState: "STALLED",
        dataReplicationError: {
          error: "AGENT_NOT_SEEN",
          // The flow, what was observed, the likely causes and the fix, as the doctor says them.
          rawError: formatFinding(agentNotSeenFlow(r.sourceServerID, a, now, opts.agentNotSeenAfterMs)),
        },
      },
      a,
      now,
    );
  }
  const state = a.state ?? "INITIATING";
  const info: DataReplicationInfo = { ...base, dataReplicationState: state };
  if (a.error)
    info.dataReplicationError = {
      error: a.error.error,
      ...(a.error.rawError ? { rawError: a.error.rawError } : {}),
    };
  if (state === "INITIATING") {
    info.dataReplicationInitiation = {
      startDateTime: isoDateTime(r.replication.startedAt ?? a.registeredAt),
      steps: a.steps ?? initialSteps(),
    };
  }
  if (
    (state === "INITIAL_SYNC" || state === "RESCAN" || state === "BACKLOG") &&
    a.rateBytesPerSecond &&
    a.rateBytesPerSecond > 0
  ) {
    const remaining = disks.reduce((n, d) => n + remainingBytes(d, state), 0);
    info.etaDateTime = isoDateTime(now + (remaining / a.rateBytesPerSecond) * 1000);
  }
  return withLag(info, a, now);
}

function remainingBytes(d: DataReplicationInfoReplicatedDisk, state: string): number {
  const total = d.totalStorageBytes ?? 0;
  if (state === "BACKLOG") return d.backloggedStorageBytes ?? 0;
  const done = state === "RESCAN" ? (d.rescannedStorageBytes ?? 0) : (d.replicatedStorageBytes ?? 0);
  return Math.max(0, total - done) + (d.backloggedStorageBytes ?? 0);
}

function withLag(info: DataReplicationInfo, a: AgentStatus, now: number): DataReplicationInfo {
  const backlog = (info.replicatedDisks ?? []).reduce((n, d) => n + (d.backloggedStorageBytes ?? 0), 0);
  if (info.dataReplicationState === "CONTINUOUS" && backlog === 0) info.lagDuration = "PT0S";
  else if (a.lastContinuousAt !== undefined) info.lagDuration = isoDuration(now - a.lastContinuousAt);
  return info;
}

function lifeCycleOf(r: SourceServerRecord, now: number): LifeCycle {
  const lifeCycle: LifeCycle = { ...r.lifeCycle };
  if (r.agent.lastSeenAt !== undefined) lifeCycle.lastSeenByServiceDateTime = isoDateTime(r.agent.lastSeenAt);
  if (lifeCycle.firstByteDateTime && r.replication.control !== "DISCONNECTED") {
    lifeCycle.elapsedReplicationDuration = isoDuration(now - Date.parse(lifeCycle.firstByteDateTime));
  }
  return lifeCycle;
}

/** The members of `SourceServer` that depend only on the stored record, not on the clock. */
function staticMembers(r: SourceServerRecord): SourceServer {
  const out: SourceServer = {
    sourceServerID: r.sourceServerID,
    arn: r.arn,
    isArchived: r.isArchived,
    tags: { ...r.tags },
    sourceProperties: r.sourceProperties,
    replicationType: r.replicationType,
  };
  if (r.userProvidedID) out.userProvidedID = r.userProvidedID;
  if (r.launchedInstance) out.launchedInstance = r.launchedInstance;
  return out;
}

/** MGN's `SourceServer` as DescribeSourceServers and the lifecycle operations return it. */
export function toSourceServer(
  r: SourceServerRecord,
  now: number,
  opts: ReplicationStateOptions,
): SourceServer {
  return {
    ...staticMembers(r),
    dataReplicationInfo: computeDataReplicationInfo(r, now, opts),
    lifeCycle: lifeCycleOf(r, now),
  };
}

/**
 * Serialized clock-independent members, per record object. The store hands
 * out the same object until the row's version changes, so this never goes
 * stale, and a listing re-serializes only what depends on the time. Kept as
 * UTF-8 bytes: a listing is assembled from buffers, never one big string
 * (a megabyte string built from thousands of pieces is slow to flatten and
 * encode for the socket).
 */
const staticJson = new WeakMap<SourceServerRecord, Buffer>();

/** The UTF-8 pieces of `JSON.stringify(toSourceServer(r, now, opts))`, reusing the clock-independent part. */
export function sourceServerJsonParts(
  r: SourceServerRecord,
  now: number,
  opts: ReplicationStateOptions,
): Buffer[] {
  let head = staticJson.get(r);
  if (head === undefined) {
    head = Buffer.from(JSON.stringify(staticMembers(r)).slice(0, -1));
    staticJson.set(r, head);
  }
  const tail = `,"dataReplicationInfo":${JSON.stringify(computeDataReplicationInfo(r, now, opts))},"lifeCycle":${JSON.stringify(lifeCycleOf(r, now))}}`;
  return [head, Buffer.from(tail)];
}

/** `JSON.stringify(toSourceServer(r, now, opts))` through the cached parts. */
export function sourceServerJson(r: SourceServerRecord, now: number, opts: ReplicationStateOptions): string {
  return Buffer.concat(sourceServerJsonParts(r, now, opts)).toString("utf8");
}
