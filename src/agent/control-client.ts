/**
 * The agent's HTTPS client for the control plane's agent routes
 * (`/ferry/agent/register`, `/ferry/agent/report`, `/ferry/agent/uninstalled`). Requests are signed with
 * AWS Signature V4 (service `mgn`) like any MGN client; the control plane's CA
 * is trusted from a file or pinned by its SHA-256 fingerprint (the pinned CA is
 * learned from the server's chain, then used for a fully verified
 * connection, so the host name is still checked); `--resolve` pairs answer
 * name lookups.
 */
import { z } from "zod";
import {
  AGENT_REGISTER_PATH,
  AGENT_REPORT_PATH,
  AGENT_UNINSTALLED_PATH,
  AgentRegisterResponse,
  AgentReportResponse,
  AgentUninstalledResponse,
  type AgentRegisterRequest,
  type AgentReportRequest,
  type AgentUninstalledRequest,
} from "../model/agent-api.ts";
import { createSignedClient } from "../lib/signed-client.ts";
import type { StaticHosts } from "../lib/static-resolve.ts";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface ControlClientOptions {
  /** `https://host[:port]` of the control plane. */
  endpoint: string;
  /** The control plane's region (part of the signature's scope). */
  region: string;
  credentials: AwsCredentials;
  /** PEM of the CA to trust (from `--ca-file`). */
  caPem?: string;
  /** SHA-256 fingerprint of the CA to pin (from `--ca-fingerprint`). */
  caFingerprint?: string;
  /** Static name resolution (`--resolve`). */
  hosts?: StaticHosts;
  /** Per request. @default 30000 */
  timeoutMs?: number;
}

/**
 * The register answer; `sourceServerCount` (how many servers the service
 * holds, as MGN's installer prints its quota use) when the control plane says.
 */
const RegisterAnswer = AgentRegisterResponse.extend({
  sourceServerCount: z.number().int().optional(),
  replicationConfiguration: z.looseObject({}),
});
export type RegisterAnswer = z.infer<typeof RegisterAnswer>;

/**
 * The agent reads only a few replication settings, so it takes the rest as
 * given: a setting the agent does not use (a staging subnet not chosen yet)
 * must not stop it from registering or reporting.
 */
const ReportAnswer = AgentReportResponse.extend({ replicationConfiguration: z.looseObject({}) });
export type ReportAnswer = z.infer<typeof ReportAnswer>;

export interface ControlClient {
  register(body: AgentRegisterRequest): Promise<RegisterAnswer>;
  report(body: AgentReportRequest): Promise<ReportAnswer>;
  /** The agent's last call after uninstalling itself: the control plane revokes its credentials. */
  uninstalled(body: AgentUninstalledRequest): Promise<AgentUninstalledResponse>;
  /** The CA actually trusted (the file's or the pinned one), to keep for the service. */
  trustedCaPem(): Promise<string | undefined>;
  /** Closes kept-alive connections. */
  close(): void;
}

export function createControlClient(options: ControlClientOptions): ControlClient {
  const client = createSignedClient({
    ...options,
    keyHint: "an install-scoped key from `ferry access-key create --scope install`",
  });
  return {
    register: (body) => client.call(AGENT_REGISTER_PATH, body, RegisterAnswer),
    report: (body) => client.call(AGENT_REPORT_PATH, body, ReportAnswer),
    uninstalled: (body) => client.call(AGENT_UNINSTALLED_PATH, body, AgentUninstalledResponse),
    trustedCaPem: () => client.trustedCaPem(),
    close: () => client.close(),
  };
}
