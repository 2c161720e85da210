/**
 * What the doctor's lab tests (test/e2e/doctor*.test.ts) ask of a running
 * lab: `ferry doctor` on a host as JSON, the source server as the control
 * plane shows it (DescribeSourceServers, `ferry source-server describe`),
 * bounded waits for a state, and the operator's download of the installer.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Lab } from "./lab.ts";

export const FERRY = join(import.meta.dirname, "..", "..", "bin", "ferry");
const MiB = 1024 * 1024;

export interface Finding {
  flow: string;
  ok: boolean;
  observed: string;
  cause: string;
  fix: string;
  code?: string;
  skipped?: boolean;
}

export interface DoctorRun {
  code: number;
  flows: Finding[];
  text: string;
}

export interface SourceServer {
  sourceServerID: string;
  dataReplicationInfo?: {
    dataReplicationState?: string;
    dataReplicationError?: { error?: string; rawError?: string };
    dataReplicationInitiation?: { steps?: { name: string; status: string }[] };
  };
  lifeCycle?: { lastSeenByServiceDateTime?: string };
}

/** Ferry's `source-server describe` adds the failing flow. */
export type DescribedServer = SourceServer & { failedFlow?: Finding & { at: string } };

/** Polls `fn` every 500 ms until it returns a value; fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function flow(flows: Finding[], id: string): Finding {
  const f = flows.find((x) => x.flow === id);
  assert.ok(f, `no ${id} in ${JSON.stringify(flows)}`);
  return f;
}

function parseReport(r: { code: number; stdout: string; stderr: string }): DoctorRun {
  const text = r.stdout.trim();
  assert.ok(text.startsWith("{"), `doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return { code: r.code, flows: (JSON.parse(text) as { flows: Finding[] }).flows, text };
}

/**
 * `ferry doctor --source --json` on the source host with the agent's state in
 * `stateDir`; `args` replace the installed configuration; `objectStore` adds
 * the lab's --s3-endpoint (F1).
 */
export async function sourceDoctor(
  lab: Lab,
  stateDir: string,
  args: string[] = [],
  o: { objectStore?: boolean } = {},
): Promise<DoctorRun> {
  const e = lab.endpoints;
  const r = await lab.exec(
    "source",
    FERRY,
    [
      "doctor",
      "--source",
      "--state-dir",
      stateDir,
      ...(o.objectStore
        ? ["--s3-endpoint", e.objectStore.endpoint, "--s3-ca-file", e.objectStore.caFile]
        : []),
      "--timeout-ms",
      "2000",
      "--probe-bytes",
      String(2 * MiB),
      "--json",
      ...args,
    ],
    { env: lab.sourceEnv(), timeoutMs: 60_000 },
  );
  return parseReport(r);
}

/** `ferry doctor --server --json` on the control plane's host (the running server's not-seen thresholds: no flag). */
export async function serverDoctor(lab: Lab): Promise<DoctorRun> {
  const cp = lab.endpoints.controlPlane;
  const r = await lab.exec("service", FERRY, [
    "doctor",
    "--server",
    "--data-dir",
    cp.dataDir,
    "--region",
    lab.plan.names.region,
    "--json",
  ]);
  return parseReport(r);
}

/**
 * `ferry doctor --replicator --json` on replicator1's host, with the flags
 * `ferry replicator run --join` takes there and the replicator key; `args`
 * add to them (--s3-endpoint, --source-address …).
 */
export async function replicatorDoctor(lab: Lab, args: string[] = []): Promise<DoctorRun> {
  const e = lab.endpoints;
  const r = await lab.exec("replicator1", FERRY, [
    "doctor",
    "--replicator",
    "--join",
    e.controlPlane.endpoint,
    "--region",
    lab.plan.names.region,
    "--ca-file",
    e.controlPlane.caFile,
    "--aws-access-key-id",
    e.keys.replicator.accessKeyId,
    "--aws-secret-access-key",
    e.keys.replicator.secretAccessKey,
    "--listen",
    e.replicators[0]!.privateAddress,
    "--timeout-ms",
    "3000",
    "--json",
    ...args,
  ]);
  return parseReport(r);
}

/** DescribeSourceServers, asked by the operator on the control plane's host. */
export async function describeServer(lab: Lab, id: string): Promise<SourceServer | undefined> {
  const r = await lab.mgn<{ items?: SourceServer[] }>("DescribeSourceServers", {
    filters: { sourceServerIDs: [id] },
  });
  return r.items?.[0];
}

/** Every source server's id, as DescribeSourceServers lists them. */
export async function sourceServerIds(lab: Lab): Promise<string[]> {
  const r = await lab.mgn<{ items?: SourceServer[] }>("DescribeSourceServers", {});
  return (r.items ?? []).map((s) => s.sourceServerID).sort();
}

/**
 * What `ferry source-server describe` prints on the control plane's host,
 * without --agent-not-seen-after: it judges "not seen" by the running
 * server's threshold, which the server keeps in its database.
 */
export async function describeCli(lab: Lab, id: string): Promise<DescribedServer> {
  const cp = lab.endpoints.controlPlane;
  const r = await lab.exec("service", FERRY, [
    "source-server",
    "describe",
    id,
    "--data-dir",
    cp.dataDir,
    "--region",
    lab.plan.names.region,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as DescribedServer;
}

/** The end of the agent's log, for a failure message. */
export async function agentLog(lab: Lab, chars = 2000): Promise<string> {
  const p = lab.process("agent");
  return p ? (await readFile(p.stderrFile, "utf8").catch(() => "")).slice(-chars) : "";
}

/** Waits until DescribeSourceServers shows `what` for `id`; on timeout, says what it showed and what the agent logged. */
export async function serverShows(
  lab: Lab,
  id: string,
  what: string,
  pred: (s: SourceServer) => boolean,
  timeoutMs = 60_000,
): Promise<SourceServer> {
  return until(`the control plane to show ${what}`, timeoutMs, async () => {
    const s = await describeServer(lab, id);
    return s && pred(s) ? s : undefined;
  }).catch(async (err: unknown) => {
    throw new Error(
      `${(err as Error).message}\n${JSON.stringify(await describeServer(lab, id))}\nagent:\n${await agentLog(lab)}`,
    );
  });
}

/** The agent is reporting again: not STALLED, no AGENT_NOT_SEEN. */
export function seen(s: SourceServer): boolean {
  const info = s.dataReplicationInfo;
  return info?.dataReplicationState !== "STALLED" && info?.dataReplicationError?.error !== "AGENT_NOT_SEEN";
}

/**
 * The operator's first step on the source: the installer from the bucket's
 * virtual-hosted name through the object-store endpoint (F1), as
 * docs/private-network.md says, into `out`. Returns curl's exit code and
 * message (28: the connection timed out).
 */
export async function downloadInstaller(
  lab: Lab,
  out: string,
  connectTimeoutSeconds = 5,
): Promise<{ code: number; stderr: string }> {
  const r = await lab.exec("source", "curl", [
    "--fail",
    "--silent",
    "--show-error",
    "--connect-timeout",
    String(connectTimeoutSeconds),
    "--cacert",
    lab.endpoints.objectStore.caFile,
    "--output",
    out,
    lab.endpoints.objectStore.installerUrl,
  ]);
  return { code: r.code, stderr: r.stderr };
}
