/**
 * The replicator-facing route and replicator assignment. A replicator
 * registers (and re-registers as its heartbeat) with a `replicator`-scoped
 * key; agents learn from register/report which replicator to dial.
 */
import type { z } from "zod";
import type { OpContext, OpResult } from "../api/context.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import type {
  ReplicationRefusal,
  ReplicatorAssignment,
  ReplicatorAuthorization,
  ReplicatorRecord,
  ReplicatorRegisterRequest,
  ReplicatorRegisterResponse,
} from "../../model/replicator.ts";
import {
  assignmentFor,
  authorizationDigest,
  chooseReplicator,
  MAX_AUTHORIZATION_SERVERS,
  newReplicatorId,
  replicationRefusal,
  replicatorFits,
} from "../../model/replicator.ts";
import { accessDenied } from "../../model/api-errors.ts";

/** When the context does not say (the control plane always does): `ferry server`'s default. */
const DEFAULT_REPLICATOR_NOT_SEEN_AFTER_MS = 60_000;

export async function registerReplicator(
  ctx: OpContext,
  input: z.infer<typeof ReplicatorRegisterRequest>,
): Promise<OpResult> {
  if (ctx.caller.scope !== "replicator" && ctx.caller.scope !== "operator") {
    throw accessDenied(
      `Access key ${ctx.caller.accessKeyId} (scope ${ctx.caller.scope}) may not register replicators; use a replicator or operator key.`,
    );
  }
  const now = ctx.now();
  const rec: ReplicatorRecord = {
    replicatorId: newReplicatorId(),
    name: input.name,
    privateAddress: input.privateAddress,
    certFingerprint: input.certFingerprint,
    stagingAreaSubnetId: input.stagingAreaSubnetId,
    registeredAt: now,
    lastSeenAt: now,
  };
  if (input.publicAddress) rec.publicAddress = input.publicAddress;
  const stored = await ctx.store.replicators.upsertByName(rec, now);
  // Only for servers assigned to this replicator: one replicator cannot speak for another's servers.
  for (const s of input.lastSnapshots ?? []) {
    await ctx.store.sourceServers.update(s.sourceServerID, (r) =>
      r.replicatorId === stored.replicatorId && (r.agent.lastSnapshotDateTime ?? "") < s.lastSnapshotDateTime
        ? { ...r, agent: { ...r.agent, lastSnapshotDateTime: s.lastSnapshotDateTime } }
        : r,
    );
  }
  const authorization = await authorizationFor(ctx, stored.replicatorId, input.authorizationDigest);
  const body: ReplicatorRegisterResponse = {
    replicatorId: stored.replicatorId,
    heartbeatIntervalSeconds: ctx.reportIntervalSeconds,
    clientCaPem: ctx.dataPlaneCa.certPem,
    ...(authorization ? { authorization } : {}),
  };
  return { status: 200, body };
}

/**
 * What the replicator needs to follow the control plane (docs/installer.md,
 * "What a disconnect revokes"): the servers assigned to it that may
 * replicate, and those assigned to it that may not, with why. The lists are
 * left out while the replicator's digest matches. Undefined (the replicator
 * falls back to certificates alone) past MAX_AUTHORIZATION_SERVERS allowed
 * servers, which no replicator's connection limit comes near.
 */
export async function authorizationFor(
  ctx: OpContext,
  replicatorId: string,
  knownDigest: string | undefined,
): Promise<ReplicatorAuthorization | undefined> {
  const allowed: string[] = [];
  const refused: { sourceServerID: string; reason: ReplicationRefusal }[] = [];
  for (const r of await ctx.store.sourceServers.list()) {
    if (r.replicatorId !== replicatorId) continue;
    const reason = replicationRefusal(r);
    if (reason) refused.push({ sourceServerID: r.sourceServerID, reason });
    else allowed.push(r.sourceServerID);
  }
  if (allowed.length > MAX_AUTHORIZATION_SERVERS) return undefined;
  // Only the message of a refusal depends on it: servers in neither list are refused too.
  refused.sort((a, b) => a.sourceServerID.localeCompare(b.sourceServerID));
  refused.length = Math.min(refused.length, MAX_AUTHORIZATION_SERVERS);
  const digest = authorizationDigest(allowed, refused);
  if (digest === knownDigest) return { digest };
  return { digest, allowedSourceServerIDs: allowed, refused };
}

/**
 * The replicator this server should use, recording a change of assignment.
 * The common case (the current replicator still fits) costs one small listing.
 */
export async function assignReplicator(
  ctx: OpContext,
  rec: SourceServerRecord,
): Promise<{ rec: SourceServerRecord; replicator?: ReplicatorAssignment }> {
  if (rec.replication.control === "DISCONNECTED") return { rec };
  const replicators = await ctx.store.replicators.list();
  const base = {
    config: rec.replicationConfiguration,
    now: ctx.now(),
    // Their own threshold (≥ 3 heartbeats), not the agents' --agent-not-seen-after.
    replicatorDeadAfterMs: ctx.stateOptions.replicatorNotSeenAfterMs ?? DEFAULT_REPLICATOR_NOT_SEEN_AFTER_MS,
  };
  const current = replicators.find((r) => r.replicatorId === rec.replicatorId);
  if (
    current &&
    replicatorFits(current, base) &&
    !rec.replicationConfiguration.useDedicatedReplicationServer
  ) {
    return { rec, replicator: assignmentFor(current, rec.replicationConfiguration) };
  }
  const load = new Map<string, number>();
  if (replicators.length) {
    for (const s of await ctx.store.sourceServers.list()) {
      if (
        s.sourceServerID === rec.sourceServerID ||
        !s.replicatorId ||
        s.replication.control === "DISCONNECTED"
      )
        continue;
      load.set(s.replicatorId, (load.get(s.replicatorId) ?? 0) + 1);
    }
  }
  const chosen = chooseReplicator({
    ...base,
    sourceServerID: rec.sourceServerID,
    current: rec.replicatorId,
    replicators,
    load,
  });
  let next = rec;
  if (chosen?.replicatorId !== rec.replicatorId) {
    next =
      (await ctx.store.sourceServers.update(rec.sourceServerID, (r) => {
        const n = { ...r };
        if (chosen) n.replicatorId = chosen.replicatorId;
        else delete n.replicatorId;
        return n;
      })) ?? rec;
  }
  return chosen
    ? { rec: next, replicator: assignmentFor(chosen, next.replicationConfiguration) }
    : { rec: next };
}
