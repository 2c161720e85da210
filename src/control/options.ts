/** The control plane's options and their resolution to fully-specified values. */
import { join } from "node:path";
import type { Logger } from "../lib/log.ts";
import { createLogger } from "../lib/log.ts";
import { FerryError } from "../lib/errors.ts";
import type { Launcher } from "../model/launch.ts";
import { DEFAULT_AGENT_UNINSTALL_GRACE_SECONDS } from "./api/lifecycle.ts";

export interface ControlPlaneOptions {
  /** Where the SQLite database, the master key and the certificates live. */
  dataDir: string;
  /** A `postgres://` URL: keep state in PostgreSQL instead of SQLite (several servers may share it). */
  databaseUrl?: string;
  /** The region clients sign for and ARNs carry. @default "us-east-1" */
  region?: string;
  /** The 12-digit account id in ARNs. @default "000000000000" */
  accountId?: string;
  /** The secrets' master key, 32 bytes base64. @default env FERRY_MASTER_KEY, else `<dataDir>/master.key` (created) */
  masterKey?: string;
  /** A server with no agent report for this long shows STALLED / AGENT_NOT_SEEN. @default 60 */
  agentNotSeenAfterSeconds?: number;
  /** How often agents are asked to report (and replicators to send heartbeats). @default 10 */
  reportIntervalSeconds?: number;
  /**
   * A replicator with no heartbeat for this long is not assigned to servers (and `ferry doctor
   * --server` names it, F4). Its own threshold, not the agents': at least 3 heartbeat intervals,
   * so a short --agent-not-seen-after never drops live replicators.
   * @default max(60, 3 × reportIntervalSeconds)
   */
  replicatorNotSeenAfterSeconds?: number;
  /**
   * After FinalizeCutover / DisconnectFromService the agent is told to uninstall and keeps its
   * keys until it acknowledges, or for this long at most.
   * @default env FERRY_AGENT_UNINSTALL_GRACE_SECONDS, else 3600
   */
  agentUninstallGraceSeconds?: number;
  /** @default Date.now */
  now?: () => number;
  /** @default JSON lines on stderr */
  logger?: Logger;
  /** Launches test and cutover instances (src/launch); without one the launch operations refuse. */
  launcher?: Launcher;
}

export interface ResolvedControlPlaneOptions {
  dataDir: string;
  databaseUrl: string | undefined;
  sqlitePath: string;
  region: string;
  accountId: string;
  masterKey: string | undefined;
  masterKeyFile: string;
  agentNotSeenAfterSeconds: number;
  reportIntervalSeconds: number;
  replicatorNotSeenAfterSeconds: number;
  agentUninstallGraceSeconds: number;
  now: () => number;
  logger: Logger;
  launcher: Launcher | undefined;
}

export function resolveControlPlaneOptions(o: ControlPlaneOptions): ResolvedControlPlaneOptions {
  const region = o.region ?? "us-east-1";
  if (!/^[a-z0-9-]{1,32}$/.test(region))
    throw new FerryError(
      "BAD_REGION",
      `Region '${region}' is not a valid region name (lowercase letters, digits and dashes).`,
    );
  const accountId = o.accountId ?? "000000000000";
  if (!/^\d{12}$/.test(accountId))
    throw new FerryError("BAD_ACCOUNT_ID", `Account id '${accountId}' must be 12 digits.`);
  if (o.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(o.databaseUrl)) {
    throw new FerryError(
      "BAD_DATABASE_URL",
      `Database URL must start with postgres:// (got '${o.databaseUrl.split(":")[0]}:…'). Leave it out to use SQLite in the data directory.`,
    );
  }
  const reportIntervalSeconds = o.reportIntervalSeconds ?? 10;
  return {
    dataDir: o.dataDir,
    databaseUrl: o.databaseUrl,
    sqlitePath: join(o.dataDir, "ferry.db"),
    region,
    accountId,
    masterKey: o.masterKey ?? process.env.FERRY_MASTER_KEY,
    masterKeyFile: join(o.dataDir, "master.key"),
    agentNotSeenAfterSeconds: o.agentNotSeenAfterSeconds ?? 60,
    reportIntervalSeconds,
    replicatorNotSeenAfterSeconds: resolveReplicatorNotSeen(
      o.replicatorNotSeenAfterSeconds,
      reportIntervalSeconds,
    ),
    agentUninstallGraceSeconds: resolveGrace(o.agentUninstallGraceSeconds),
    now: o.now ?? Date.now,
    logger: o.logger ?? createLogger({ fields: { component: "control" } }),
    launcher: o.launcher,
  };
}

/** Heartbeats a replicator may miss before it counts as gone. */
export const REPLICATOR_MISSED_HEARTBEATS = 3;

function resolveReplicatorNotSeen(given: number | undefined, heartbeatSeconds: number): number {
  const floor = REPLICATOR_MISSED_HEARTBEATS * heartbeatSeconds;
  if (given === undefined) return Math.max(60, floor);
  if (!Number.isFinite(given) || given < floor)
    throw new FerryError(
      "BAD_REPLICATOR_NOT_SEEN",
      `The replicator not-seen threshold must be at least ${REPLICATOR_MISSED_HEARTBEATS} heartbeat intervals (${floor} s: replicators send one every ${heartbeatSeconds} s), got '${String(given)}'.`,
    );
  return given;
}

function resolveGrace(given: number | undefined): number {
  const env = process.env.FERRY_AGENT_UNINSTALL_GRACE_SECONDS;
  const value =
    given ?? (env !== undefined && env !== "" ? Number(env) : DEFAULT_AGENT_UNINSTALL_GRACE_SECONDS);
  if (!Number.isFinite(value) || value < 0)
    throw new FerryError(
      "BAD_UNINSTALL_GRACE",
      `The agent uninstall grace period must be a number of seconds, 0 or more (got '${String(given ?? env)}'); check FERRY_AGENT_UNINSTALL_GRACE_SECONDS.`,
    );
  return value;
}
