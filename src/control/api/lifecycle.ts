/**
 * Taking an agent out of service (FinalizeCutover, DisconnectFromService).
 * The order matters: the control plane marks the server disconnected and
 * tells its agent to uninstall in the next report answer (`uninstall: true`);
 * the agent stops replicating, removes its state and its service, and
 * acknowledges on `/ferry/agent/uninstalled`, which revokes its keys. An agent
 * that never acknowledges (the source is off, or gone) loses its keys once
 * the grace period has passed since the disconnect: every agent-signed
 * request checks it, and a sweep deletes the keys of agents that never call
 * again. Revoking first would leave the agent unable to hear "uninstall".
 */
import type { Caller, OpContext, OpResult } from "./context.ts";
import * as L from "../../model/lifecycle.ts";
import { accessDenied, authError, notFound } from "../../model/api-errors.ts";
import type { AgentUninstalledResponse } from "../../model/agent-api.ts";
import type { AgentUninstalledRequest } from "../../model/agent-api.ts";

/**
 * How long a disconnected agent keeps its keys to hear "uninstall" and
 * acknowledge: long enough for a reboot or a network outage, short enough
 * that forgotten credentials do not linger.
 */
export const DEFAULT_AGENT_UNINSTALL_GRACE_SECONDS = 3600;

type Base = Omit<OpContext, "caller">;

function graceMs(base: Base): number {
  return base.agentUninstallGraceSeconds * 1000;
}

/**
 * For every request signed by an agent key (after its signature checked):
 * the keys of a disconnected server whose grace period is over are deleted,
 * and the request is refused as the unknown key it now is.
 */
export async function refuseRevokedAgentKey(base: Base, caller: Caller): Promise<void> {
  if (caller.scope !== "agent" || !caller.sourceServerID) return;
  const r = await base.store.sourceServers.get(caller.sourceServerID);
  if (!r || !L.agentKeysDue(r, base.now(), graceMs(base))) return;
  await base.store.accessKeys.deleteForServer(r.sourceServerID);
  throw authError(
    "UnrecognizedClientException",
    `The security token included in the request is invalid: access key ${caller.accessKeyId} was revoked because source server ${r.sourceServerID} is disconnected from the service (lifecycle state ${r.lifeCycle.state}). Reinstall the agent to replicate this server again, or remove it with ferry-installer-init --uninstall.`,
  );
}

/**
 * Deletes the keys of every disconnected server whose agent acknowledged or
 * whose grace period is over; returns the servers whose keys went. Each
 * server is read again just before its keys go, so a reinstall that raced
 * the listing keeps its new key.
 */
export async function revokeDueAgentKeys(base: Base): Promise<string[]> {
  const revoked: string[] = [];
  for (const listed of await base.store.sourceServers.list()) {
    if (!L.agentKeysDue(listed, base.now(), graceMs(base))) continue;
    const r = await base.store.sourceServers.get(listed.sourceServerID);
    if (!r || !L.agentKeysDue(r, base.now(), graceMs(base))) continue;
    if ((await base.store.accessKeys.deleteForServer(r.sourceServerID)) > 0) revoked.push(r.sourceServerID);
  }
  return revoked;
}

/** `POST /ferry/agent/uninstalled`: the agent is gone; its keys are revoked now. */
export async function acknowledgeUninstall(
  ctx: OpContext,
  input: AgentUninstalledRequest,
): Promise<OpResult> {
  if (ctx.caller.scope !== "agent" || ctx.caller.sourceServerID !== input.sourceServerID) {
    throw accessDenied(
      `Access key ${ctx.caller.accessKeyId} may not acknowledge the uninstall of source server ${input.sourceServerID}: only that server's agent may.`,
    );
  }
  const next = await ctx.store.sourceServers.update(input.sourceServerID, (r) =>
    L.agentUninstalled(r, ctx.now()),
  );
  if (!next) throw notFound("SOURCE_SERVER", input.sourceServerID);
  await ctx.store.accessKeys.deleteForServer(input.sourceServerID);
  const body: AgentUninstalledResponse = { sourceServerID: input.sourceServerID, credentialsRevoked: true };
  return { status: 200, body };
}

/** Runs `revokeDueAgentKeys` every `everyMs` until stopped; failures are logged and retried. */
export function startKeyRevocationSweep(
  base: Base,
  everyMs: number,
  onError: (err: unknown) => void,
): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = revokeDueAgentKeys(base).catch(onError);
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
