/**
 * Replicators as the control plane knows them, and which one a source server
 * replicates to. A replicator announces itself (and keeps announcing, as its
 * heartbeat) with a private and optionally a public address, the SHA-256
 * fingerprint of its data-plane certificate, and the pool it serves (the
 * `stagingAreaSubnetId` of the servers it takes). A source server's
 * `dataPlaneRouting` picks the address the agent dials; `stagingAreaSubnetId`
 * picks the pool; `useDedicatedReplicationServer` asks for a replicator no
 * other server uses.
 */
import { z } from "zod";
import { createHash, randomBytes } from "node:crypto";
import type { ReplicationConfiguration } from "./mgn-shapes.gen.ts";

export const REPLICATOR_REGISTER_PATH = "/ferry/replicator/register";

/** The CN of a source server's data-plane client certificate: what replicators check against HELLO. */
export function sourceServerCommonName(sourceServerId: string): string {
  return `source-server:${sourceServerId}`;
}

const HostPort = z
  .string()
  .max(300)
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "host:port");

const SourceServerId = z.string().regex(/^s-[0-9a-zA-Z]{17}$/);

export const ReplicatorRegisterRequest = z.object({
  /** Stable name of this replicator (re-registering with it updates the same entry). */
  name: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._-]+$/),
  privateAddress: HostPort,
  publicAddress: HostPort.optional(),
  /** SHA-256 of the replicator's data-plane certificate, uppercase hex pairs with colons. */
  certFingerprint: z.string().regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
  /** The pool this replicator serves; "" (default) serves servers with any staging subnet. */
  stagingAreaSubnetId: z.string().max(255).default(""),
  /** The newest snapshot of each source server this replicator holds (DescribeSourceServers' lastSnapshotDateTime). */
  lastSnapshots: z
    .array(
      z.object({
        sourceServerID: SourceServerId,
        lastSnapshotDateTime: z.iso.datetime(),
      }),
    )
    .max(10000)
    .optional(),
  /**
   * The `digest` of the last `authorization` this replicator holds: the
   * control plane leaves the lists out of its answer while they are unchanged.
   * Older replicators send none (and ignore the answer's `authorization`).
   */
  authorizationDigest: z.string().max(128).optional(),
});
export type ReplicatorRegisterRequest = z.input<typeof ReplicatorRegisterRequest>;

/** At most this many servers in each list of an authorization (well above a replicator's connections). */
export const MAX_AUTHORIZATION_SERVERS = 10000;

/** Why a source server assigned to a replicator may no longer replicate. */
export const ReplicationRefusal = z.enum(["DISCONNECTED", "CUTOVER", "ARCHIVED"]);
export type ReplicationRefusal = z.infer<typeof ReplicationRefusal>;

/**
 * The source servers a replicator accepts: those assigned to it and allowed
 * to replicate. `refused` names the servers assigned to it that may not (for
 * the refusal's message only; a server in neither list is refused too).
 * `digest` identifies the lists; when it equals the request's
 * `authorizationDigest` the lists are left out (nothing changed).
 */
export const ReplicatorAuthorization = z.object({
  digest: z.string().max(128),
  allowedSourceServerIDs: z.array(SourceServerId).max(MAX_AUTHORIZATION_SERVERS).optional(),
  refused: z
    .array(z.object({ sourceServerID: SourceServerId, reason: ReplicationRefusal }))
    .max(MAX_AUTHORIZATION_SERVERS)
    .optional(),
});
export type ReplicatorAuthorization = z.infer<typeof ReplicatorAuthorization>;

export const ReplicatorRegisterResponse = z.object({
  replicatorId: z.string(),
  heartbeatIntervalSeconds: z.number(),
  /** The CA whose client certificates (one per source server) the replicator must accept, and only those (PEM). */
  clientCaPem: z.string(),
  /** Which source servers may replicate to this replicator now (absent from older control planes). */
  authorization: ReplicatorAuthorization.optional(),
});
export type ReplicatorRegisterResponse = z.infer<typeof ReplicatorRegisterResponse>;

/** The refusal of a source server record for data-plane writes, or undefined when it may replicate. */
export function replicationRefusal(r: {
  isArchived: boolean;
  lifeCycle: { state?: string };
  replication: { control: string };
}): ReplicationRefusal | undefined {
  if (r.isArchived) return "ARCHIVED";
  if (r.lifeCycle.state === "CUTOVER") return "CUTOVER";
  if (r.lifeCycle.state === "DISCONNECTED" || r.replication.control === "DISCONNECTED") return "DISCONNECTED";
  return undefined;
}

/** The digest of an authorization's lists (order-independent). */
export function authorizationDigest(
  allowed: readonly string[],
  refused: readonly { sourceServerID: string; reason: string }[],
): string {
  const text = JSON.stringify([
    [...allowed].sort(),
    refused.map((r) => `${r.sourceServerID}:${r.reason}`).sort(),
  ]);
  return createHash("sha256").update(text).digest("base64url");
}

export interface ReplicatorRecord {
  replicatorId: string;
  name: string;
  privateAddress: string;
  publicAddress?: string;
  certFingerprint: string;
  stagingAreaSubnetId: string;
  registeredAt: number;
  lastSeenAt: number;
}

/** What the agent is told: where to connect and which certificate to expect. */
export const ReplicatorAssignment = z.object({
  replicatorId: z.string(),
  address: z.string(),
  certFingerprint: z.string(),
});
export type ReplicatorAssignment = z.infer<typeof ReplicatorAssignment>;

export function newReplicatorId(): string {
  return `i-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

export interface AssignmentInput {
  sourceServerID: string;
  current: string | undefined;
  config: ReplicationConfiguration;
  replicators: ReplicatorRecord[];
  /** replicatorId → the source servers assigned to it (this one excluded). */
  load: Map<string, number>;
  now: number;
  replicatorDeadAfterMs: number;
}

/** Alive, serving the server's pool, and reachable the way its routing asks. */
export function replicatorFits(
  r: ReplicatorRecord,
  i: Pick<AssignmentInput, "config" | "now" | "replicatorDeadAfterMs">,
): boolean {
  if (i.now - r.lastSeenAt > i.replicatorDeadAfterMs) return false;
  if (i.config.dataPlaneRouting === "PUBLIC_IP" && !r.publicAddress) return false;
  const pool = i.config.stagingAreaSubnetId ?? "";
  return r.stagingAreaSubnetId === "" || r.stagingAreaSubnetId === pool;
}

/**
 * The replicator for a source server: keep the current one while it fits
 * (moving a server means a rescan); otherwise the least-loaded fitting one,
 * an unused one when a dedicated replicator is asked for. Undefined when none
 * fits (the agent waits; the initiation shows the replication server step in
 * progress).
 */
export function chooseReplicator(i: AssignmentInput): ReplicatorRecord | undefined {
  const current = i.replicators.find((r) => r.replicatorId === i.current);
  const dedicated = i.config.useDedicatedReplicationServer === true;
  if (current && replicatorFits(current, i) && (!dedicated || (i.load.get(current.replicatorId) ?? 0) === 0))
    return current;
  const candidates = i.replicators
    .filter((r) => replicatorFits(r, i))
    .filter((r) => !dedicated || (i.load.get(r.replicatorId) ?? 0) === 0)
    .sort(
      (a, b) =>
        (i.load.get(a.replicatorId) ?? 0) - (i.load.get(b.replicatorId) ?? 0) ||
        a.replicatorId.localeCompare(b.replicatorId),
    );
  return candidates[0];
}

export function assignmentFor(r: ReplicatorRecord, config: ReplicationConfiguration): ReplicatorAssignment {
  return {
    replicatorId: r.replicatorId,
    address: config.dataPlaneRouting === "PUBLIC_IP" && r.publicAddress ? r.publicAddress : r.privateAddress,
    certFingerprint: r.certFingerprint,
  };
}
