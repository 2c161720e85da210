/**
 * Live probes, one network question each: does a name resolve (and to
 * what), does TCP connect (or time out, get refused, find no route), what
 * does TLS present (and is it trusted, does it hold the pinned CA), what time
 * does the server say, and how fast does the data plane carry a short probe.
 * Every probe is bounded by a timeout and never throws for a network
 * failure: it returns what it saw.
 */
import { lookup } from "node:dns/promises";
import { isIP, connect as netConnect } from "node:net";
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate } from "node:tls";
import { request as httpsRequest } from "node:https";
import { normalizeFingerprint } from "../../lib/pki.ts";
import { staticLookup, type StaticHosts } from "../../lib/static-resolve.ts";
import { socketErrorCode } from "../../model/flow-classify.ts";
import { decodeProbeLength, encodeProbeLength, PROBE_ALPN, PROBE_HEADER_BYTES } from "../../wire/probe.ts";

export type ResolveResult =
  { ok: true; addresses: string[]; via: "--resolve" | "system" | "literal" } | { ok: false; error: string };

/** Resolves `name` the way Ferry's clients do: `--resolve` pairs first, then the system (hosts file, DNS). */
export async function resolveName(name: string, hosts?: StaticHosts): Promise<ResolveResult> {
  if (isIP(name)) return { ok: true, addresses: [name], via: "literal" };
  const pinned = hosts?.get(name.toLowerCase());
  if (pinned) return { ok: true, addresses: [pinned], via: "--resolve" };
  try {
    const all = await lookup(name, { all: true });
    return { ok: true, addresses: [...new Set(all.map((a) => a.address))], via: "system" };
  } catch (err) {
    return { ok: false, error: socketErrorCode(err) };
  }
}

/** RFC 1918, loopback, link-local, CGNAT and IPv6 ULA/loopback: addresses a private link carries. */
export function isPrivateAddress(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split(".").map(Number);
    return (
      a === 10 ||
      a === 127 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  const low = ip.toLowerCase();
  return low === "::1" || /^f[cd]/.test(low) || /^fe80:/.test(low);
}

export type ConnectResult =
  { ok: true; ms: number; localAddress: string } | { ok: false; ms: number; error: string };

/** One TCP connection attempt; a SYN that gets no answer within `timeoutMs` is ETIMEDOUT. */
export function tcpConnect(address: string, port: number, timeoutMs: number): Promise<ConnectResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    const s = netConnect({ host: address, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, ms: ms(), error: "ETIMEDOUT" });
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      const localAddress = s.localAddress ?? "";
      s.destroy();
      resolve({ ok: true, ms: ms(), localAddress });
    });
    s.once("error", (err) => {
      clearTimeout(timer);
      resolve({ ok: false, ms: ms(), error: socketErrorCode(err) });
    });
  });
}

export interface TlsInspectOptions {
  /** The IP to connect to. */
  address: string;
  port: number;
  /** The name the certificate must hold (SNI and the identity check). */
  name: string;
  /** Trusted CA (PEM); the system's store when absent. */
  caPem?: string;
  clientCertificate?: { certPem: string; keyPem: string };
  alpn?: string[];
  timeoutMs: number;
}

export type TlsInspectResult =
  | {
      ok: true;
      /** SHA-256 fingerprints of the presented chain, leaf first. */
      chain: string[];
      /** PEM-less raw certificates, leaf first (to learn a pinned CA). */
      raw: Buffer[];
      /** Trusted by `caPem` (or the system) and holding `name`. */
      authorized: boolean;
      authorizationError?: string;
      alpnProtocol?: string;
    }
  | { ok: false; error: string };

/** A TLS handshake that reports what the server presents and whether it verifies, without refusing it. */
export function tlsInspect(o: TlsInspectOptions): Promise<TlsInspectResult> {
  return new Promise((resolve) => {
    const s = tlsConnect({
      host: o.address,
      port: o.port,
      servername: isIP(o.name) ? undefined : o.name,
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(o.caPem ? { ca: o.caPem } : {}),
      ...(o.clientCertificate ? { cert: o.clientCertificate.certPem, key: o.clientCertificate.keyPem } : {}),
      ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, error: "ETIMEDOUT" });
    }, o.timeoutMs);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      const chain: string[] = [];
      const raw: Buffer[] = [];
      let cert = s.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      const seen = new Set<string>();
      while (cert?.raw && !seen.has(cert.fingerprint256) && chain.length < 10) {
        seen.add(cert.fingerprint256);
        chain.push(cert.fingerprint256);
        raw.push(cert.raw);
        cert = cert.issuerCertificate as typeof cert;
      }
      // The name check TLS skipped above (so that a mismatch is reported, not thrown).
      let authorizationError = s.authorizationError ? String(s.authorizationError) : undefined;
      if (!authorizationError) {
        const leaf = s.getPeerCertificate();
        const bad = checkName(o.name, leaf);
        if (bad) authorizationError = bad;
      }
      const alpnProtocol = typeof s.alpnProtocol === "string" ? s.alpnProtocol : undefined;
      s.destroy();
      resolve({
        ok: true,
        chain,
        raw,
        authorized: !authorizationError,
        ...(authorizationError ? { authorizationError } : {}),
        ...(alpnProtocol ? { alpnProtocol } : {}),
      });
    });
    s.once("error", (err) => {
      clearTimeout(timer);
      resolve({ ok: false, error: socketErrorCode(err) });
    });
  });
}

function checkName(name: string, cert: PeerCertificate): string | undefined {
  // node:tls's own identity check, called explicitly.
  const err = checkServerIdentity(name, cert) as (Error & { code?: string }) | undefined;
  return err ? (err.code ?? err.message) : undefined;
}

/** Whether `pin` (any common fingerprint spelling) is in a presented chain. */
export function chainHasPin(chain: readonly string[], pin: string): boolean {
  const want = normalizeFingerprint(pin);
  return chain.some((fp) => fp === want);
}

export interface HttpsGetOptions {
  url: URL;
  /** Connect here instead of resolving the URL's host. */
  address: string;
  caPem?: string;
  timeoutMs: number;
  method?: "GET" | "HEAD";
}

export type HttpsGetResult = { ok: true; status: number; date?: string } | { ok: false; error: string };

/** A plain HTTPS request to a fixed address (the name still used for SNI and the certificate check). */
export function httpsGet(o: HttpsGetOptions): Promise<HttpsGetResult> {
  return new Promise((resolve) => {
    const host = o.url.hostname.replace(/^\[|\]$/g, "");
    const req = httpsRequest(
      {
        method: o.method ?? "GET",
        host,
        port: o.url.port || 443,
        path: `${o.url.pathname}${o.url.search}`,
        lookup: staticLookup(new Map([[host.toLowerCase(), o.address]])),
        ...(o.caPem ? { ca: o.caPem } : {}),
        timeout: o.timeoutMs,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          const date = res.headers.date;
          resolve({ ok: true, status: res.statusCode ?? 0, ...(date ? { date } : {}) });
        });
        res.on("error", (err) => resolve({ ok: false, error: socketErrorCode(err) }));
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (err) => resolve({ ok: false, error: socketErrorCode(err) }));
    req.end();
  });
}

export interface DataPlaneProbeOptions {
  address: string;
  port: number;
  /** The fingerprint the control plane says the replicator's certificate has. */
  fingerprint: string;
  clientCertificate: { certPem: string; keyPem: string };
  bytes: number;
  timeoutMs: number;
}

export type DataPlaneProbeResult =
  | { ok: true; bytes: number; ms: number; bytesPerSecond: number }
  | {
      ok: false;
      stage: "tls" | "fingerprint" | "pairing" | "transfer";
      error: string;
      got?: string;
    };

/**
 * Connects as the agent does (TLS 1.3, the source's client certificate),
 * checks the replicator's fingerprint, and times `bytes` through the probe.
 * A replicator that refuses the client certificate closes the handshake
 * (pairing); one without the probe refuses the ALPN.
 */
export function probeDataPlane(o: DataPlaneProbeOptions): Promise<DataPlaneProbeResult> {
  const want = normalizeFingerprint(o.fingerprint);
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: DataPlaneProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    let stage: "tls" | "transfer" = "tls";
    const s = tlsConnect({
      host: o.address,
      port: o.port,
      minVersion: "TLSv1.3",
      rejectUnauthorized: false,
      cert: o.clientCertificate.certPem,
      key: o.clientCertificate.keyPem,
      ALPNProtocols: [PROBE_ALPN],
    });
    const timer = setTimeout(() => done({ ok: false, stage, error: "ETIMEDOUT" }), o.timeoutMs);
    s.once("secureConnect", () => {
      const got = s.getPeerX509Certificate()?.fingerprint256;
      if (got !== want)
        return done({
          ok: false,
          stage: "fingerprint",
          error: "REPLICATOR_FINGERPRINT_MISMATCH",
          got: got ?? "",
        });
      if (s.alpnProtocol !== PROBE_ALPN)
        return done({ ok: false, stage: "transfer", error: "NO_PROBE_SUPPORT" });
      stage = "transfer";
      const started = performance.now();
      let answer: Buffer = Buffer.alloc(0);
      s.on("data", (chunk: Buffer) => {
        answer = Buffer.concat([answer, chunk]);
        if (answer.length < PROBE_HEADER_BYTES) return;
        const ms = performance.now() - started;
        const bytes = decodeProbeLength(answer) ?? 0;
        done({ ok: true, bytes, ms: Math.round(ms), bytesPerSecond: (bytes * 1000) / Math.max(ms, 1) });
      });
      s.write(encodeProbeLength(o.bytes));
      const chunk = Buffer.alloc(Math.min(1024 * 1024, o.bytes), 0x5a);
      let left = o.bytes;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", pump);
        }
      };
      pump();
    });
    s.once("error", (err) => {
      // With TLS 1.3 a refused client certificate arrives as an alert after the client's handshake.
      const code = socketErrorCode(err);
      const pairing = /CERTIFICATE|UNKNOWN_CA|ALERT|ECONNRESET/i.test(code) || /alert/i.test(String(err));
      done({ ok: false, stage: pairing ? "pairing" : stage, error: code });
    });
    // Closed without an answer: with TLS 1.3 that is how a refused client certificate ends.
    s.once("close", () => done({ ok: false, stage: "pairing", error: "CLOSED" }));
  });
}
