/**
 * `ferry doctor --replicator`: the flows a replicator host needs — F3 (the
 * endpoints' names), F4 (the service: TCP, TLS and the CA pin, the clock, a
 * signed call with the replicator's key), F6 (the object store, when given)
 * — and F7 seen from this side: the data-plane port listens, and no
 * connection from a source stays half-open (a SYN that arrived but whose
 * reply has no way back: the return route).
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { promisify } from "node:util";
import type { SignedClientCredentials } from "../../lib/signed-client.ts";
import type { StaticHosts } from "../../lib/static-resolve.ts";
import { type DoctorFinding, type FlowRun, failed, newRun, passed, summarize } from "./checks.ts";
import { checkClock, checkSignedCall, checkTcpTls } from "./endpoint.ts";
import { checkNames } from "./names.ts";
import { tcpConnect } from "./probes.ts";
import { type ObjectStoreTarget, checkObjectStore, hostPort, objectStoreName } from "./object-store.ts";

const run = promisify(execFile);

export interface ReplicatorDoctorOptions {
  /** The control plane joined (`--join`). */
  endpoint: string;
  region: string;
  credentials?: SignedClientCredentials;
  caPem?: string;
  caFingerprint?: string;
  hosts?: StaticHosts;
  s3?: ObjectStoreTarget;
  /** Where the replicator listens for agents (host:port). @default 127.0.0.1:1500 */
  listen?: { host: string; port: number };
  /** Source addresses whose return route to check (a route lookup, no packet sent). */
  sourceAddresses?: string[];
  /** @default 5000 */
  timeoutMs?: number;
}

/** Whether this host has a route to `address`: a UDP connect() looks the route up and sends nothing. */
export function routeTo(address: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket(address.includes(":") ? "udp6" : "udp4");
    s.once("error", (err: NodeJS.ErrnoException) => {
      s.close();
      resolve(err.code ?? err.message);
    });
    // With a callback, node hands a failed connect() to it rather than to "error".
    s.connect(9, address, ((err?: NodeJS.ErrnoException) => {
      s.close();
      resolve(err ? (err.code ?? err.message) : undefined);
    }) as () => void);
  });
}

/** Peers whose connections to `port` are half-open here (SYN received, handshake not completed). */
export async function halfOpenPeers(port: number): Promise<string[] | undefined> {
  try {
    const { stdout } = await run("ss", ["-Htn", "state", "syn-recv", `( sport = :${port} )`], {
      timeout: 5000,
    });
    const peers = stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/).pop() ?? "")
      .filter(Boolean)
      .map((p) =>
        p
          .replace(/:\d+$/, "")
          .replace(/^\[|\]$/g, "")
          .replace(/^::ffff:/, ""),
      );
    return [...new Set(peers)];
  } catch {
    return undefined; // no ss here: the check is skipped
  }
}

export async function runReplicatorDoctor(o: ReplicatorDoctorOptions): Promise<DoctorFinding[]> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const service = hostPort(o.endpoint, 443);
  const s3Name = o.s3 ? objectStoreName(o.s3).name : undefined;
  const names = newRun("F3", "service");
  const resolved = await checkNames(names, [service.host, ...(s3Name ? [s3Name] : [])], o.hosts);
  const runs: FlowRun[] = [names];

  const f4 = newRun("F4", "service");
  runs.push(f4);
  let localAddress: string | undefined;
  const serviceAddress = resolved.get(service.host);
  if (!serviceAddress) Object.assign(f4, { skipped: `${service.host} does not resolve`, blockedBy: "F3" });
  else {
    const t = {
      name: service.host,
      port: service.port,
      address: serviceAddress,
      timeoutMs,
      ...(o.caPem ? { caPem: o.caPem } : {}),
      ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    };
    const ok = await checkTcpTls(f4, t);
    if (ok) {
      localAddress = ok.localAddress;
      if ((await checkClock(f4, t, ok.caPem)) && o.credentials) {
        await checkSignedCall(f4, { ...t, region: o.region, credentials: o.credentials }, ok.caPem);
      }
    }
  }

  if (o.s3) runs.push(await checkObjectStore("F6", o.s3, resolved, timeoutMs));

  const f7 = newRun("F7", "replicator");
  runs.push(f7);
  const listen = o.listen ?? { host: "127.0.0.1", port: 1500 };
  const dial = listen.host === "0.0.0.0" || listen.host === "::" ? "127.0.0.1" : listen.host;
  const tcp = await tcpConnect(dial, listen.port, timeoutMs);
  if (!tcp.ok) failed(f7, "listen", { check: "connect", address: dial, port: listen.port, error: tcp.error });
  else {
    passed(f7, "listen", `the replicator listens on ${dial}:${listen.port}`);
    const unrouted: string[] = [];
    for (const a of o.sourceAddresses ?? []) if (await routeTo(a)) unrouted.push(a);
    const peers = await halfOpenPeers(listen.port);
    if (unrouted.length) {
      failed(f7, "return-path", { check: "return-path", peers: unrouted, port: listen.port, noRoute: true });
    } else if (peers?.length) failed(f7, "return-path", { check: "return-path", peers, port: listen.port });
    else {
      const routed = o.sourceAddresses?.length ? `routes back to ${o.sourceAddresses.join(", ")}; ` : "";
      passed(
        f7,
        "return-path",
        peers === undefined
          ? `${routed}half-open connections not checked (no \`ss\`)`
          : `${routed}no half-open connections from sources`,
      );
    }
  }
  return summarize(runs, "replicator", localAddress);
}
