/**
 * `ferry agent install`: what the installer hands over to once the package is
 * unpacked — choose the disks (the root disk always), register with the
 * control plane under the machine's stable identity, and keep what the agent
 * service needs (endpoint, per-server credentials, trusted CA, `--resolve`
 * pairs, disks) in its state directory, readable by root only.
 */
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { FerryError, systemErrorCode } from "../lib/errors.ts";
import { createCsr } from "../lib/pki.ts";
import { parseResolve } from "../lib/static-resolve.ts";
import { createControlClient, type AwsCredentials } from "./control-client.ts";
import { chooseDisks, listDisks, type BlockDisk } from "./disks.ts";
import { loadOrCreateSourceServerId } from "./identity.ts";
import { collectSourceProperties } from "./source-properties.ts";

export interface AgentInstallOptions {
  endpoint: string;
  region: string;
  /** The installer's (install-scoped) key pair; used for registration only, never stored. */
  credentials: AwsCredentials;
  caPem?: string;
  caFingerprint?: string;
  /** `NAME=IP` pairs. */
  resolve?: string[];
  stateDir: string;
  /** Paths from `--devices`; undefined = every disk (or what `chooseDevices` answers). */
  devices?: string[];
  /** Asked when `devices` is undefined (the interactive prompt); undefined answer = every disk. */
  chooseDevices?: (disks: BlockDisk[]) => Promise<string[] | undefined>;
  tags?: Record<string, string>;
  userProvidedId?: string;
  /** @default true */
  startReplication?: boolean;
  /** @default "/etc/machine-id" */
  machineIdFile?: string;
  /** Prefix for /sys and /proc (tests). @default "/" */
  sysRoot?: string;
  /**
   * MGN's `--force-volumes`: replicate exactly `devices`, without discovering
   * the machine's disks and without adding the root disk.
   */
  forceVolumes?: boolean;
}

/** What `ferry agent run` needs, kept in `<stateDir>/agent.json` (0600). */
export const AgentConfig = z.object({
  endpoint: z.string(),
  region: z.string(),
  sourceServerID: z.string(),
  arn: z.string(),
  agentCredentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }),
  caFile: z.string().optional(),
  resolve: z.array(z.string()),
  disks: z.array(z.object({ deviceName: z.string(), bytes: z.number() })),
  reportIntervalSeconds: z.number(),
  /** The data-plane client identity issued at registration (key kept 0600), for replicators. */
  dataPlane: z.object({ keyFile: z.string(), certFile: z.string(), caFile: z.string() }).optional(),
  /** The replicator the control plane assigned, as it answered (absent until one fits). */
  replicator: z.unknown().optional(),
  /** The systemd unit installed for this agent (removed when it uninstalls itself). */
  service: z.object({ unitFile: z.string(), root: z.string() }).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

export interface AgentInstallResult {
  sourceServerID: string;
  arn: string;
  identity: string;
  disks: { deviceName: string; bytes: number }[];
  desiredReplicationState: string;
  /** How many source servers the control plane holds, when it says. */
  sourceServerCount?: number;
  configFile: string;
}

export async function installAgent(o: AgentInstallOptions): Promise<AgentInstallResult> {
  const hosts = parseResolve(o.resolve ?? []);
  const available = o.forceVolumes ? [] : await listDisks({ root: o.sysRoot });
  const requested = o.devices ?? (o.chooseDevices ? await o.chooseDevices(available) : undefined);
  const disks = await chooseDisks(available, requested);
  if (disks.length === 0) {
    throw new FerryError(
      "NO_DISKS",
      "no disk to replicate: this machine shows no block device; pass --devices PATH",
    );
  }
  const identity = await loadOrCreateSourceServerId(o.stateDir, o.machineIdFile);
  const client = createControlClient({
    endpoint: o.endpoint,
    region: o.region,
    credentials: o.credentials,
    caPem: o.caPem,
    caFingerprint: o.caFingerprint,
    hosts,
  });
  // The data-plane key never leaves the source: the control plane signs its
  // request into a client certificate bound to the source server.
  const { csrPem, keyPem } = await createCsr(`ferry-agent ${identity}`);
  try {
    const answer = await client.register({
      identity,
      csr: csrPem,
      ...(o.userProvidedId ? { userProvidedID: o.userProvidedId } : {}),
      ...(o.tags && Object.keys(o.tags).length ? { tags: o.tags } : {}),
      startReplication: o.startReplication ?? true,
      sourceProperties: await collectSourceProperties(disks),
    });
    const caPem = await client.trustedCaPem();
    await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
    // identity.ts may have created it with the default mode: credentials live here.
    await chmod(o.stateDir, 0o700);
    let caFile: string | undefined;
    if (caPem) {
      caFile = join(o.stateDir, "ca.pem");
      await writeFile(caFile, caPem);
    }
    let dataPlane: AgentConfig["dataPlane"];
    if (answer.dataPlaneCertificate) {
      dataPlane = {
        keyFile: join(o.stateDir, "data-plane-key.pem"),
        certFile: join(o.stateDir, "data-plane-cert.pem"),
        caFile: join(o.stateDir, "data-plane-ca.pem"),
      };
      await writeFile(dataPlane.keyFile, keyPem, { mode: 0o600 });
      await writeFile(dataPlane.certFile, answer.dataPlaneCertificate.certificatePem);
      await writeFile(dataPlane.caFile, answer.dataPlaneCertificate.caCertificatePem);
    }
    const config: AgentConfig = {
      endpoint: o.endpoint,
      region: o.region,
      sourceServerID: answer.sourceServerID,
      arn: answer.arn,
      agentCredentials: answer.agentCredentials,
      caFile,
      resolve: o.resolve ?? [],
      disks,
      reportIntervalSeconds: answer.reportIntervalSeconds,
      ...(dataPlane ? { dataPlane } : {}),
      ...(answer.replicator !== undefined ? { replicator: answer.replicator } : {}),
    };
    const configFile = join(o.stateDir, "agent.json");
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    return {
      sourceServerID: answer.sourceServerID,
      arn: answer.arn,
      identity,
      disks,
      desiredReplicationState: answer.desiredReplicationState,
      sourceServerCount: answer.sourceServerCount,
      configFile,
    };
  } finally {
    client.close();
  }
}

/** Records the installed service in `<stateDir>/agent.json` (rewritten whole, 0600). */
export async function recordService(
  stateDir: string,
  service: NonNullable<AgentConfig["service"]>,
): Promise<void> {
  const config = { ...(await loadAgentConfig(stateDir)), service };
  const file = join(stateDir, "agent.json");
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function loadAgentConfig(stateDir: string): Promise<AgentConfig> {
  const file = join(stateDir, "agent.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new FerryError(
      "AGENT_NOT_INSTALLED",
      `no agent configuration at ${file} (${systemErrorCode(err) ?? String(err)}): run the installer (or \`ferry agent install\`) first`,
    );
  }
  const parsed = AgentConfig.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new FerryError(
      "AGENT_CONFIG_INVALID",
      `${file} is not a valid agent configuration: reinstall the agent`,
    );
  }
  return parsed.data;
}
