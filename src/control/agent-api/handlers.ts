/**
 * The agent-facing routes (see docs/control-plane.md): `register` turns an
 * installer's request into a source server (or finds the one with the same
 * identity) and hands out per-server credentials; `report` is the heartbeat
 * that carries replication progress and answers with what the operator wants
 * (run, pause, stop, disconnect) and the live replication settings.
 */
import type { OpContext, OpResult } from "../api/context.ts";
import { requireInitialized } from "../api/context.ts";
import type {
  AgentRegisterResponse,
  AgentReportResponse,
  DesiredReplicationState,
} from "../../model/agent-api.ts";
import type { AgentRegisterRequest, AgentReportRequest } from "../../model/agent-api.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import { applyAgentReport } from "../../model/agent-report.ts";
import { agentMustUninstall } from "../../model/lifecycle.ts";
import { newSourceServerId, resourceArn } from "../../model/ids.ts";
import {
  initialLaunchConfiguration,
  initialReplicationConfiguration,
  settingsFromTemplate,
} from "../../model/replication-configuration.ts";
import { isoDateTime } from "../../model/duration.ts";
import { accessDenied, notFound, validationError } from "../../model/api-errors.ts";
import { signCsr } from "../../lib/pki.ts";
import { sourceServerCommonName } from "../../model/replicator.ts";
import { assignReplicator } from "./replicators.ts";
import type { z } from "zod";

type RegisterInput = z.infer<typeof AgentRegisterRequest>;

function desired(r: SourceServerRecord): DesiredReplicationState {
  return r.replication.control;
}

async function newRecord(ctx: OpContext, input: RegisterInput): Promise<SourceServerRecord> {
  const now = ctx.now();
  const id = newSourceServerId();
  const [oldest] = await ctx.store.templates.list();
  const props = { ...input.sourceProperties, lastUpdatedDateTime: isoDateTime(now) };
  const name = props.identificationHints?.hostname ?? props.identificationHints?.fqdn ?? id;
  const disks = props.disks ?? [];
  const rec: SourceServerRecord = {
    sourceServerID: id,
    arn: resourceArn(ctx.region, ctx.accountId, "source-server", id),
    isArchived: false,
    tags: input.tags ?? {},
    replicationType: "AGENT_BASED",
    sourceProperties: props,
    lifeCycle: {
      addedToServiceDateTime: isoDateTime(now),
      state: input.startReplication ? "NOT_READY" : "STOPPED",
    },
    replication: input.startReplication ? { control: "RUNNING", startedAt: now } : { control: "STOPPED" },
    agent: { identity: input.identity, registeredAt: now },
    replicationConfiguration: initialReplicationConfiguration(
      id,
      name,
      settingsFromTemplate(oldest),
      disks,
      disks[0]?.deviceName,
    ),
    launchConfiguration: initialLaunchConfiguration(id, name),
  };
  if (input.userProvidedID) rec.userProvidedID = input.userProvidedID;
  return rec;
}

/** A reinstall on a known machine: same server, fresh initiation (the agent rescans). */
function reRegister(r: SourceServerRecord, input: RegisterInput, now: number): SourceServerRecord {
  const n = structuredClone(r);
  n.sourceProperties = { ...input.sourceProperties, lastUpdatedDateTime: isoDateTime(now) };
  if (input.tags) n.tags = { ...n.tags, ...input.tags };
  if (input.userProvidedID) n.userProvidedID = input.userProvidedID;
  const wasDisconnected = n.replication.control === "DISCONNECTED";
  if (wasDisconnected) {
    n.isArchived = false;
    n.lifeCycle = { addedToServiceDateTime: n.lifeCycle.addedToServiceDateTime, state: "NOT_READY" };
    n.agent = { identity: n.agent.identity, registeredAt: now };
  } else {
    n.agent = { ...n.agent, registeredAt: now, state: "INITIATING" };
    delete n.agent.error;
    delete n.agent.steps;
  }
  if (wasDisconnected || n.replication.control !== "STOPPED" || input.startReplication) {
    n.replication = input.startReplication ? { control: "RUNNING", startedAt: now } : { control: "STOPPED" };
    if (!input.startReplication) n.lifeCycle.state = "STOPPED";
    else if (n.lifeCycle.state === "STOPPED")
      n.lifeCycle.state = n.agent.initialSyncCompletedAt !== undefined ? "READY_FOR_TEST" : "NOT_READY";
  }
  return n;
}

export async function register(ctx: OpContext, input: RegisterInput): Promise<OpResult> {
  if (ctx.caller.scope !== "install" && ctx.caller.scope !== "operator") {
    throw accessDenied(
      `Access key ${ctx.caller.accessKeyId} (scope ${ctx.caller.scope}) may not register agents; use an install or operator key.`,
    );
  }
  await requireInitialized(ctx);
  // Check the request before anything is stored.
  if (input.csr !== undefined) {
    try {
      await signCsr(ctx.dataPlaneCa, input.csr, { commonName: "check", usages: ["client"], days: 1 });
    } catch (err) {
      throw validationError(`csr: ${(err as Error).message}`, "fieldValidationFailed", [
        { name: "csr", message: (err as Error).message },
      ]);
    }
  }
  let rec: SourceServerRecord | undefined;
  // Bounded: a lost insert race means the other registration's row is there on the next read.
  for (let attempt = 0; attempt < 5 && !rec; attempt++) {
    const existing = await ctx.store.sourceServers.findByIdentity(input.identity);
    if (existing) {
      rec = await ctx.store.sourceServers.update(existing.sourceServerID, (r) =>
        reRegister(r, input, ctx.now()),
      );
      // Reinstalled after a disconnect or a cutover: its released staging may be written again.
      if (rec && existing.replication.control === "DISCONNECTED")
        await ctx.jobs?.reinstateStaging(existing.sourceServerID);
    } else {
      const fresh = await newRecord(ctx, input);
      if (await ctx.store.sourceServers.insertWithIdentity(fresh, input.identity, ctx.now())) rec = fresh;
    }
  }
  if (!rec) throw new Error(`registration of identity ${input.identity} did not settle after 5 attempts`);
  const assigned = await assignReplicator(ctx, rec);
  rec = assigned.rec;
  await ctx.store.accessKeys.deleteForServer(rec.sourceServerID);
  const key = await ctx.accessKeys.create("agent", `agent of ${rec.sourceServerID}`, rec.sourceServerID);
  let dataPlaneCertificate: AgentRegisterResponse["dataPlaneCertificate"];
  if (input.csr !== undefined) {
    let issued;
    try {
      issued = await signCsr(ctx.dataPlaneCa, input.csr, {
        commonName: sourceServerCommonName(rec.sourceServerID),
        usages: ["client"],
        days: 825,
      });
    } catch (err) {
      throw validationError(`csr: ${(err as Error).message}`, "fieldValidationFailed", [
        { name: "csr", message: (err as Error).message },
      ]);
    }
    dataPlaneCertificate = { certificatePem: issued.certPem, caCertificatePem: ctx.dataPlaneCa.certPem };
  }
  const sourceServerCount = (await ctx.store.sourceServers.list()).filter((s) => !s.isArchived).length;
  const body: AgentRegisterResponse = {
    sourceServerID: rec.sourceServerID,
    arn: rec.arn,
    region: ctx.region,
    agentCredentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
    desiredReplicationState: desired(rec),
    replicationConfiguration: rec.replicationConfiguration,
    ...(assigned.replicator ? { replicator: assigned.replicator } : {}),
    ...(dataPlaneCertificate ? { dataPlaneCertificate } : {}),
    reportIntervalSeconds: ctx.reportIntervalSeconds,
    agentNotSeenAfterSeconds: ctx.stateOptions.agentNotSeenAfterMs / 1000,
    sourceServerCount,
  };
  return { status: 200, body };
}

export async function report(ctx: OpContext, input: z.infer<typeof AgentReportRequest>): Promise<OpResult> {
  if (ctx.caller.scope !== "agent" || ctx.caller.sourceServerID !== input.sourceServerID) {
    throw accessDenied(
      `Access key ${ctx.caller.accessKeyId} may not report for source server ${input.sourceServerID}: only the agent credentials issued to that server at registration may.`,
    );
  }
  const reported = await ctx.store.sourceServers.update(input.sourceServerID, (r) =>
    applyAgentReport(r, input, ctx.now()),
  );
  if (!reported) throw notFound("SOURCE_SERVER", input.sourceServerID);
  const { rec: next, replicator } = await assignReplicator(ctx, reported);
  const body: AgentReportResponse = {
    sourceServerID: next.sourceServerID,
    desiredReplicationState: desired(next),
    replicationConfiguration: next.replicationConfiguration,
    ...(replicator ? { replicator } : {}),
    reportIntervalSeconds: ctx.reportIntervalSeconds,
    // FinalizeCutover or DisconnectFromService: the agent uninstalls itself, then acknowledges.
    ...(agentMustUninstall(next) ? { uninstall: true } : {}),
  };
  return { status: 200, body };
}
