/**
 * The object-store flow, checked the same way from the source (F1) and from
 * a replicator (F6): TCP and TLS to the endpoint by the name the installer
 * uses, then the published agent package's hash file.
 */
import type { FlowId } from "../../model/flows.ts";
import { type FlowRun, newRun } from "./checks.ts";
import { checkPackage, checkTcpTls } from "./endpoint.ts";

export const AGENT_PACKAGE_FILE = "ferry-agent-linux-x64.tar.gz";

/** The object-store endpoint the installer downloads from (host[:port]). */
export interface ObjectStoreTarget {
  endpoint: string;
  bucket: string;
  pathStyle: boolean;
  caPem?: string;
}

export function hostPort(spec: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(spec.includes("://") ? spec : `https://${spec}`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : defaultPort };
}

/** The name a download resolves: the bucket's virtual host, or the endpoint itself with path style. */
export function objectStoreName(t: ObjectStoreTarget): { host: string; port: number; name: string } {
  const s3 = hostPort(t.endpoint.replace(/^\*\./, ""), 443);
  return { ...s3, name: t.pathStyle ? s3.host : `${t.bucket}.${s3.host}` };
}

/** Runs the object-store flow against `resolved` (what the name check found). */
export async function checkObjectStore(
  flow: Extract<FlowId, "F1" | "F6">,
  t: ObjectStoreTarget,
  resolved: Map<string, string>,
  timeoutMs: number,
): Promise<FlowRun> {
  const run = newRun(flow, "object-store");
  const { name, port } = objectStoreName(t);
  const address = resolved.get(name);
  if (!address) return Object.assign(run, { skipped: `${name} does not resolve`, blockedBy: "F3" as const });
  const target = { name, port, address, timeoutMs, ...(t.caPem ? { caPem: t.caPem } : {}) };
  const ok = await checkTcpTls(run, target);
  if (ok) {
    const path = `${t.pathStyle ? `/${t.bucket}` : ""}/latest/linux/${AGENT_PACKAGE_FILE}.sha256`;
    await checkPackage(run, target, new URL(`https://${name}:${port}${path}`), ok.caPem);
  }
  return run;
}
