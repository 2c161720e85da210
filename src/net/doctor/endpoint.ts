/**
 * The checks every HTTPS endpoint of the setup gets, in the order a
 * connection meets them: TCP to its address, then the TLS handshake (the
 * certificate trusted, holding the name, and — when a CA is pinned — the
 * pinned CA in the presented chain). Then, for the service, the clock and
 * a signed call; for the object store, the installer package.
 */
import { X509Certificate } from "node:crypto";
import { createSignedClient, type SignedClientCredentials } from "../../lib/signed-client.ts";
import { FerryError } from "../../lib/errors.ts";
import { normalizeFingerprint } from "../../lib/pki.ts";
import {
  AGENT_ASSIGNMENT_PATH,
  AgentAssignmentResponse,
  type AgentAssignmentResponse as Assignment,
} from "../../model/agent-api.ts";
import { failed, passed, type FlowRun } from "./checks.ts";
import { chainHasPin, httpsGet, tcpConnect, tlsInspect } from "./probes.ts";

export interface EndpointTarget {
  /** The name clients use (SNI, certificate, Host). */
  name: string;
  port: number;
  /** Where the name resolved to. */
  address: string;
  caPem?: string;
  caFingerprint?: string;
  timeoutMs: number;
}

/** TCP then TLS; returns the CA to trust from here on (the given or the pinned one), or undefined when a check failed. */
export async function checkTcpTls(
  run: FlowRun,
  t: EndpointTarget,
): Promise<{ caPem?: string; localAddress: string } | undefined> {
  const tcp = await tcpConnect(t.address, t.port, t.timeoutMs);
  if (!tcp.ok) {
    failed(run, "tcp", { check: "connect", address: t.address, port: t.port, error: tcp.error });
    return undefined;
  }
  passed(run, "tcp", `TCP ${t.port} to ${t.address} connects (${tcp.ms} ms, reply path works)`);
  let caPem = t.caPem;
  const where = `${t.address}:${t.port}`;
  if (t.caFingerprint) {
    const seen = await tlsInspect({ address: t.address, port: t.port, name: t.name, timeoutMs: t.timeoutMs });
    if (!seen.ok) {
      failed(run, "tls", { check: "tls", address: where, error: seen.error, name: t.name });
      return undefined;
    }
    if (!chainHasPin(seen.chain, t.caFingerprint)) {
      failed(run, "tls", {
        check: "tls",
        address: where,
        error: "CA_FINGERPRINT_MISMATCH",
        pinned: normalizeFingerprint(t.caFingerprint),
        presented: seen.chain,
      });
      return undefined;
    }
    const raw = seen.raw[seen.chain.indexOf(normalizeFingerprint(t.caFingerprint))]!;
    caPem = new X509Certificate(raw).toString();
  }
  const tls = await tlsInspect({
    address: t.address,
    port: t.port,
    name: t.name,
    timeoutMs: t.timeoutMs,
    ...(caPem ? { caPem } : {}),
  });
  if (!tls.ok || !tls.authorized) {
    failed(run, "tls", {
      check: "tls",
      address: where,
      error: tls.ok ? (tls.authorizationError ?? "UNTRUSTED") : tls.error,
      name: t.name,
    });
    return undefined;
  }
  passed(run, "tls", `TLS certificate for ${t.name} trusted${t.caFingerprint ? " (pinned CA found)" : ""}`);
  return { ...(caPem ? { caPem } : {}), localAddress: tcp.localAddress };
}

/** Clock skew larger than this fails (SigV4 allows 5 minutes). */
export const MAX_SKEW_SECONDS = 60;

/** The server's HTTP Date against this host's clock. */
export async function checkClock(
  run: FlowRun,
  t: EndpointTarget,
  caPem: string | undefined,
): Promise<boolean> {
  const url = new URL(`https://${t.name}:${t.port}/healthz`);
  const before = Date.now();
  const r = await httpsGet({ url, address: t.address, timeoutMs: t.timeoutMs, ...(caPem ? { caPem } : {}) });
  const after = Date.now();
  if (!r.ok) {
    failed(run, "clock", { check: "tls", address: `${t.address}:${t.port}`, error: r.error, name: t.name });
    return false;
  }
  if (!r.date) {
    passed(run, "clock", "the server sent no Date header (clock checked by the signed call)");
    return true;
  }
  const server = Date.parse(r.date);
  // Date has a one-second resolution: compare with the middle of the request.
  const skew = (server - (before + after) / 2) / 1000;
  if (Math.abs(skew) > MAX_SKEW_SECONDS) {
    failed(run, "clock", { check: "clock", skewSeconds: skew, via: "http-date", serverTime: r.date });
    return false;
  }
  passed(run, "clock", `clock within ${Math.max(1, Math.ceil(Math.abs(skew)))} s of the server's`);
  return true;
}

export interface SignedCallTarget extends EndpointTarget {
  region: string;
  credentials: SignedClientCredentials;
  /** The agent's own server, when it is registered; else any id (the call then proves only the signature). */
  sourceServerID?: string;
}

const PLACEHOLDER_ID = "s-00000000000000000";

/**
 * A signed call to the control plane: accepted, or refused for a reason
 * other than the signature (AccessDenied: the key is valid but of another
 * scope), proves the credentials and the clock. With the agent's own key it
 * also returns the current assignment.
 */
export async function checkSignedCall(
  run: FlowRun,
  t: SignedCallTarget,
  caPem: string | undefined,
): Promise<{ assignment?: Assignment } | undefined> {
  const client = createSignedClient({
    endpoint: `https://${t.name}:${t.port}`,
    region: t.region,
    credentials: t.credentials,
    ...(caPem ? { caPem } : {}),
    hosts: new Map([[t.name.toLowerCase(), t.address]]),
    timeoutMs: t.timeoutMs,
  });
  try {
    const assignment = await client.call(
      AGENT_ASSIGNMENT_PATH,
      { sourceServerID: t.sourceServerID ?? PLACEHOLDER_ID },
      AgentAssignmentResponse,
    );
    passed(run, "auth", `signed call accepted (key ${t.credentials.accessKeyId})`);
    return { assignment };
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    const type = String(err.details.errorType ?? "");
    const message = err.message.replace(/^the control plane refused [^:]+: [^:]+: /, "");
    if (err.code !== "CONTROL_PLANE_REFUSED") {
      failed(run, "auth", { check: "tls", address: `${t.address}:${t.port}`, error: err.code, name: t.name });
      return undefined;
    }
    const expired = /Signature expired: \S+ is more than .* from the server time (\S+?)\.? /.exec(
      `${message} `,
    );
    if (expired) {
      const serverTime = expired[1]!;
      failed(run, "auth", {
        check: "clock",
        via: "sigv4",
        skewSeconds: (Date.parse(serverTime) - Date.now()) / 1000,
        serverTime,
      });
      return undefined;
    }
    if (/Signature|UnrecognizedClient|IncompleteSignature|MissingAuthenticationToken/.test(type)) {
      failed(run, "auth", { check: "auth", errorType: type, message: message.slice(0, 300) });
      return undefined;
    }
    // Authenticated, then refused for what the key may do: the credentials and the clock are right.
    passed(run, "auth", `signed call authenticated (key ${t.credentials.accessKeyId}: ${type})`);
    return {};
  } finally {
    client.close();
  }
}

/** The object store serves the installer's package hash (proves the bucket, the path style and GetObject). */
export async function checkPackage(
  run: FlowRun,
  t: EndpointTarget,
  url: URL,
  caPem: string | undefined,
): Promise<boolean> {
  const r = await httpsGet({ url, address: t.address, timeoutMs: t.timeoutMs, ...(caPem ? { caPem } : {}) });
  if (!r.ok) {
    failed(run, "package", { check: "tls", address: `${t.address}:${t.port}`, error: r.error, name: t.name });
    return false;
  }
  if (r.status !== 200) {
    failed(run, "package", { check: "http", url: url.href, status: r.status });
    return false;
  }
  passed(run, "package", `${url.pathname} is published`);
  return true;
}
