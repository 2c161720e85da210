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
import { ObservedFlowFailure } from "./flows.ts";

export const AGENT_REGISTER_PATH = "/ferry/agent/register";
export const AGENT_REPORT_PATH = "/ferry/agent/report";
/** Read-only: what the control plane would answer a report with, for `ferry doctor`. */
export const AGENT_ASSIGNMENT_PATH = "/ferry/agent/assignment";
/** The agent's acknowledgement that it uninstalled itself after FinalizeCutover / DisconnectFromService. */
export const AGENT_UNINSTALLED_PATH = "/ferry/agent/uninstalled";

/**
 * The agent package as the control plane serves it (docs/installer.md):
 * `GET` with any Ferry key (the installer signs with its install key), `PUT`
 * with an operator key and `x-ferry-sha256` (`ferry release publish
 * --endpoint`). The installer script itself is served without a signature: it
 * is what a source downloads first, before it can sign anything.
 */
export const AGENT_PACKAGE_PATH = "/ferry/agent/package";
export const AGENT_PACKAGE_SHA256_PATH = "/ferry/agent/package.sha256";
export const AGENT_INSTALLER_PATH = "/ferry/agent/ferry-installer-init";
/** The SHA-256 (hex) of a `PUT` body, checked by the control plane before it keeps anything. */
export const SHA256_HEADER = "x-ferry-sha256";
/** The published package's version (package.json of the build). */
export const AGENT_VERSION_HEADER = "x-ferry-agent-version";

/** What the control plane answers to a publish, and keeps beside the package. */
export const AgentPackagePublished = z.object({
  file: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  version: z.string(),
  publishedAt: ISO8601DatetimeString,
});
export type AgentPackagePublished = z.infer<typeof AgentPackagePublished>;

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
  /**
   * Source servers in the service after this registration, archived ones
   * excepted: the installer prints it, as MGN's prints its quota use.
   */
  sourceServerCount: z.number().int().nonnegative().optional(),
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
  /**
   * Ferry: the network flow the agent last saw fail (docs/private-network.md),
   * while it is failing; absent once the flow works again.
   */
  failedFlow: ObservedFlowFailure.optional(),
});
export type AgentReportRequest = z.input<typeof AgentReportRequest>;

export const AgentReportResponse = z.object({
  sourceServerID: SourceServerID,
  desiredReplicationState: DesiredReplicationState,
  replicationConfiguration: ReplicationConfiguration,
  replicator: ReplicatorAssignment.optional(),
  reportIntervalSeconds: z.number(),
  /**
   * The server was cut over (FinalizeCutover) or disconnected (DisconnectFromService): stop
   * replicating, remove the agent's state and service, then acknowledge on AGENT_UNINSTALLED_PATH.
   */
  uninstall: z.boolean().optional(),
});
export type AgentReportResponse = z.infer<typeof AgentReportResponse>;

/** The agent's last call: it has uninstalled itself; its credentials are revoked on receipt. */
export const AgentUninstalledRequest = z.object({
  sourceServerID: SourceServerID,
  /** What the agent removed, for the control plane's log. */
  removed: z.array(z.string().max(4096)).max(20).optional(),
});
export type AgentUninstalledRequest = z.input<typeof AgentUninstalledRequest>;

export const AgentUninstalledResponse = z.object({
  sourceServerID: SourceServerID,
  credentialsRevoked: z.boolean(),
});
export type AgentUninstalledResponse = z.infer<typeof AgentUninstalledResponse>;

export const AgentAssignmentRequest = z.object({ sourceServerID: SourceServerID });

/**
 * The assignment as the next report would answer it, plus both addresses of
 * the replicator, so that `ferry doctor` can tell a wrong routing choice from
 * a blocked port. Changes nothing.
 */
export const AgentAssignmentResponse = z.object({
  sourceServerID: SourceServerID,
  desiredReplicationState: DesiredReplicationState,
  dataPlaneRouting: z.enum(["PRIVATE_IP", "PUBLIC_IP"]),
  replicator: ReplicatorAssignment.optional(),
  privateAddress: z.string().optional(),
  publicAddress: z.string().optional(),
  /** The control plane's clock (ISO 8601). */
  serverTime: z.string(),
});
export type AgentAssignmentResponse = z.infer<typeof AgentAssignmentResponse>;
