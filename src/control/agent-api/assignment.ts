/**
 * `/ferry/agent/assignment`: what the next report would answer about the
 * data plane — desired state, routing, the assigned replicator and both of
 * its addresses — without recording a heartbeat or any state. `ferry doctor
 * --source` uses it (with the agent's own key) to check the authentication
 * and to learn which address `dataPlaneRouting` selects.
 */
import type { z } from "zod";
import type { OpContext, OpResult } from "../api/context.ts";
import type { AgentAssignmentRequest, AgentAssignmentResponse } from "../../model/agent-api.ts";
import { accessDenied, notFound } from "../../model/api-errors.ts";
import { isoDateTime } from "../../model/duration.ts";
import { assignReplicator } from "./replicators.ts";

export async function assignment(
  ctx: OpContext,
  input: z.infer<typeof AgentAssignmentRequest>,
): Promise<OpResult> {
  if (ctx.caller.scope !== "agent" || ctx.caller.sourceServerID !== input.sourceServerID) {
    throw accessDenied(
      `Access key ${ctx.caller.accessKeyId} may not read the assignment of source server ${input.sourceServerID}: only the agent credentials issued to that server may.`,
    );
  }
  const rec = await ctx.store.sourceServers.get(input.sourceServerID);
  if (!rec) throw notFound("SOURCE_SERVER", input.sourceServerID);
  const { replicator } = await assignReplicator(ctx, rec);
  const record = replicator
    ? (await ctx.store.replicators.list()).find((r) => r.replicatorId === replicator.replicatorId)
    : undefined;
  const body: AgentAssignmentResponse = {
    sourceServerID: rec.sourceServerID,
    desiredReplicationState: rec.replication.control,
    dataPlaneRouting:
      rec.replicationConfiguration.dataPlaneRouting === "PUBLIC_IP" ? "PUBLIC_IP" : "PRIVATE_IP",
    ...(replicator ? { replicator } : {}),
    ...(record ? { privateAddress: record.privateAddress } : {}),
    ...(record?.publicAddress ? { publicAddress: record.publicAddress } : {}),
    serverTime: isoDateTime(ctx.now()),
  };
  return { status: 200, body };
}
