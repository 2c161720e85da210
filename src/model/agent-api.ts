/**
 * The agent-facing contract of the control plane (`/ferry/agent/*`), shared by
 * the control plane (which validates) and the agent and replicator (which
 * send). Requests are SigV4-signed like the MGN API: `register` with an
 * `install`-scoped key (the installer's), `report` with the per-server `agent`
 * key that `register` hands out, so one server's credentials never act for
 * another.
 */
import { z } from "zod";
import {
  DataReplicationErrorString,
  DataReplicationInfoReplicatedDisk,
  DataReplicationInitiationStep,
  ISO8601DatetimeString,
  ReplicationConfiguration,
  ReplicatorID,
  SourceProperties,
  SourceServerID,
  TagsMap,
  UserProvidedId,
} from "./mgn-shapes.gen.ts";
import { ReplicatorAssignment } from "./replicator.ts";

export const AGENT_REGISTER_PATH = "/ferry/agent/register";
export const AGENT_REPORT_PATH = "/ferry/agent/report";

export const AgentRegisterRequest = z.object({
  /**
   * A stable identity chosen by the agent (for example a UUID it stores on
   * the source's root disk, or the machine-id). Re-registering with the same
   * identity returns the same source server: a reinstall is a rescan, not a
   * new server. Sturdier than MGN's MAC-address identity.
   */
  identity: z
    .string()
    .min(8)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/),
  userProvidedID: UserProvidedId.optional(),
  tags: TagsMap.optional(),
  sourceProperties: SourceProperties,
  /** `false` for `--no-replication`: registered, replication started later by StartReplication. */
  startReplication: z.boolean().default(true),
  /**
   * A PKCS#10 request (PEM) for the agent's data-plane key: the answer carries
   * the certificate, bound to this source server, that replicators accept.
   */
  csr: z.string().max(16384).optional(),
});
export type AgentRegisterRequest = z.input<typeof AgentRegisterRequest>;

export const AgentCredentials = z.object({
  accessKeyId: z.string(),
  secretAccessKey: z.string(),
});

export const DesiredReplicationState = z.enum(["RUNNING", "PAUSED", "STOPPED", "DISCONNECTED"]);
export type DesiredReplicationState = z.infer<typeof DesiredReplicationState>;

export const AgentRegisterResponse = z.object({
  sourceServerID: SourceServerID,
  arn: z.string(),
  region: z.string(),
  /** Per-server credentials for `report`; replace any earlier ones. */
  agentCredentials: AgentCredentials,
  desiredReplicationState: DesiredReplicationState,
  replicationConfiguration: ReplicationConfiguration,
  /** Where to replicate to; absent while no replicator fits (keep reporting, it will come). */
  replicator: ReplicatorAssignment.optional(),
  /** The data-plane client certificate issued for the request's `csr`, and the CA that signed it (PEM). */
  dataPlaneCertificate: z.object({ certificatePem: z.string(), caCertificatePem: z.string() }).optional(),
  /** Report at least this often; after `agentNotSeenAfterSeconds` the server shows AGENT_NOT_SEEN. */
  reportIntervalSeconds: z.number(),
  agentNotSeenAfterSeconds: z.number(),
});
export type AgentRegisterResponse = z.infer<typeof AgentRegisterResponse>;

/** What the agent can say about replication; the control states (PAUSED, STOPPED, …) are the operator's. */
export const AgentReplicationState = z.enum([
  "INITIATING",
  "INITIAL_SYNC",
  "BACKLOG",
  "CREATING_SNAPSHOT",
  "CONTINUOUS",
  "RESCAN",
  "STALLED",
]);
export type AgentReplicationState = z.infer<typeof AgentReplicationState>;

export const AgentReportRequest = z.object({
  sourceServerID: SourceServerID,
  dataReplicationState: AgentReplicationState,
  initiationSteps: z.array(DataReplicationInitiationStep).max(20).optional(),
  replicatedDisks: z.array(DataReplicationInfoReplicatedDisk).max(60).optional(),
  dataReplicationError: z
    .object({ error: DataReplicationErrorString, rawError: z.string().max(65536).optional() })
    .optional(),
  lastSnapshotDateTime: ISO8601DatetimeString.optional(),
  replicatorId: ReplicatorID.optional(),
  /** Updated hardware facts (a disk added, RAM changed). */
  sourceProperties: SourceProperties.optional(),
});
export type AgentReportRequest = z.input<typeof AgentReportRequest>;

export const AgentReportResponse = z.object({
  sourceServerID: SourceServerID,
  desiredReplicationState: DesiredReplicationState,
  replicationConfiguration: ReplicationConfiguration,
  replicator: ReplicatorAssignment.optional(),
  reportIntervalSeconds: z.number(),
});
export type AgentReportResponse = z.infer<typeof AgentReportResponse>;
