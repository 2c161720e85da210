/**
 * A small HTTPS client for the control plane's own routes (agents and
 * replicators): JSON bodies signed with AWS Signature V4 (service `mgn`) like
 * any MGN client, the control plane's CA trusted from a PEM or pinned by its
 * SHA-256 fingerprint (the pinned CA is learned from the server's chain, then
 * used for a fully verified connection, so the host name is still checked),
 * and static name resolution (`--resolve`).
 */
import { createHash, createHmac, X509Certificate } from "node:crypto";
import { request as httpsRequest, Agent } from "node:https";
import { connect as tlsConnect, type PeerCertificate } from "node:tls";
import { SignatureV4 } from "@smithy/signature-v4";
import type { z } from "zod";
import { FerryError, systemErrorCode } from "./errors.ts";
import { normalizeFingerprint } from "./pki.ts";
import { staticLookup, type StaticHosts } from "./static-resolve.ts";

export interface SignedClientCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignedClientOptions {
  /** `https://host[:port]` of the control plane. */
  endpoint: string;
  /** The control plane's region (part of the signature's scope). */
  region: string;
  credentials: SignedClientCredentials;
  /** PEM of the CA to trust. */
  caPem?: string;
  /** SHA-256 fingerprint of the CA to pin. */
  caFingerprint?: string;
  /** Static name resolution. */
  hosts?: StaticHosts;
  /** Per request. @default 30000 */
  timeoutMs?: number;
  /** Added to authentication refusals (which key the caller should use). */
  keyHint?: string;
}

export interface SignedClient {
  /** POSTs `body` to `path` and validates the answer with `schema`. */
  call<S extends z.ZodType>(path: string, body: unknown, schema: S): Promise<z.infer<S>>;
  /** Sends `body` (bytes) signed; a non-2xx answer throws like `call`. */
  request(
    method: string,
    path: string,
    body?: Uint8Array,
    headers?: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>;
  /** The CA actually trusted (the given one or the pinned one). */
  trustedCaPem(): Promise<string | undefined>;
  close(): void;
}

/** node:crypto behind the interface the SigV4 signer expects of a hash. */
class NodeSha256 {
  #h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret === undefined ? createHash("sha256") : createHmac("sha256", toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(toBuffer(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#h.digest()));
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

function derToPem(der: Buffer): string {
  const b64 = der
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Connects once without verification, walks the presented chain and returns
 * the certificate whose fingerprint is `pin` (then used as the trusted CA).
 */
export async function fetchPinnedCa(
  url: URL,
  pin: string,
  hosts: StaticHosts | undefined,
  timeoutMs: number,
): Promise<string> {
  const want = normalizeFingerprint(pin);
  const chain = await new Promise<PeerCertificate[]>((resolve, reject) => {
    const socket = tlsConnect({
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname,
      rejectUnauthorized: false,
      ...(hosts ? { lookup: staticLookup(hosts) } : {}),
      timeout: timeoutMs,
    });
    socket.once("secureConnect", () => {
      const certs: PeerCertificate[] = [];
      let cert = socket.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      const seen = new Set<string>();
      while (cert?.raw && !seen.has(cert.fingerprint256) && certs.length < 10) {
        seen.add(cert.fingerprint256);
        certs.push(cert);
        cert = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate as typeof cert;
      }
      socket.destroy();
      resolve(certs);
    });
    socket.once("timeout", () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    socket.once("error", reject);
  }).catch((err: unknown) => {
    throw connectError(url, err);
  });
  const match = chain.find((c) => c.fingerprint256 === want);
  if (!match) {
    throw new FerryError(
      "CA_FINGERPRINT_MISMATCH",
      `the control plane at ${url.origin} presented no certificate with the pinned CA fingerprint ${want} ` +
        `(it presented ${chain.map((c) => c.fingerprint256).join(", ") || "none"}): check --ca-fingerprint against the one \`ferry server\` prints, or pass --ca-file`,
      { details: { endpoint: url.origin, pinned: want } },
    );
  }
  const pem = derToPem(match.raw);
  if (!new X509Certificate(pem).ca) {
    throw new FerryError(
      "CA_FINGERPRINT_NOT_CA",
      `the pinned certificate ${want} at ${url.origin} is not a CA certificate: pin the CA's fingerprint, not the server's`,
    );
  }
  return pem;
}

function connectError(url: URL, err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const code = systemErrorCode(err) ?? "";
  const text = err instanceof Error ? err.message : String(err);
  if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|HOSTNAME|ALTNAME/.test(code)) {
    return new FerryError(
      "CONTROL_PLANE_TLS",
      `the control plane's certificate at ${url.origin} is not trusted (${code}: ${text}): pass the CA with --ca-file or pin it with --ca-fingerprint, and use a name the certificate holds`,
      { cause: err, details: { endpoint: url.origin, tlsError: code } },
    );
  }
  return new FerryError(
    "CONTROL_PLANE_UNREACHABLE",
    `cannot reach the control plane at ${url.origin} (${code || text}): check the endpoint, --resolve and that TCP ${url.port || 443} is open to it`,
    { cause: err, details: { endpoint: url.origin, error: code || text } },
  );
}

/** An MGN-shaped error answer turned into one FerryError. */
function refusal(path: string, status: number, text: string, keyHint = ""): FerryError {
  let type = `HTTP ${status}`;
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { code?: string; message?: string; __type?: string };
    type = body.code ?? body.__type ?? type;
    message = body.message ?? message;
  } catch {
    // not JSON: keep the raw text
  }
  const hint =
    status === 403 || /Unrecognized|Signature|Authentication/.test(type)
      ? `: check the access key pair${keyHint ? ` (${keyHint})` : ""} and --region`
      : /Uninitialized/.test(type)
        ? ": run `aws mgn initialize-service` (or `ferry up`) against the control plane first"
        : "";
  return new FerryError(
    "CONTROL_PLANE_REFUSED",
    `the control plane refused ${path}: ${type}: ${message}${hint}`,
    {
      details: { path, status, errorType: type },
    },
  );
}

export function createSignedClient(options: SignedClientOptions): SignedClient {
  const url = new URL(options.endpoint);
  if (url.protocol !== "https:") {
    throw new FerryError("BAD_ENDPOINT", `endpoint ${options.endpoint} is not https://host[:port]`);
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const signer = new SignatureV4({
    credentials: options.credentials,
    region: options.region,
    service: "mgn",
    sha256: NodeSha256,
  });
  let agent: Promise<{ agent: Agent; caPem?: string }> | undefined;
  const getAgent = () =>
    (agent ??= (async () => {
      const caPem =
        options.caPem ??
        (options.caFingerprint
          ? await fetchPinnedCa(url, options.caFingerprint, options.hosts, timeoutMs)
          : undefined);
      return {
        caPem,
        agent: new Agent({
          keepAlive: true,
          ...(caPem ? { ca: caPem } : {}),
          ...(options.hosts ? { lookup: staticLookup(options.hosts) } : {}),
        }),
      };
    })());

  async function request(
    method: string,
    path: string,
    payload: Uint8Array = new Uint8Array(),
    extraHeaders: Record<string, string> = {},
  ) {
    const signed = await signer.sign({
      method,
      protocol: "https:",
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path,
      query: {},
      headers: { host: url.host, ...extraHeaders },
      body: payload,
    });
    const { agent: httpsAgent } = await getAgent();
    const answer = await new Promise<{
      status: number;
      headers: Record<string, string | string[] | undefined>;
      body: Buffer;
    }>((resolve, reject) => {
      const req = httpsRequest(
        {
          method,
          host: url.hostname.replace(/^\[|\]$/g, ""),
          port: url.port || 443,
          path,
          headers: { ...signed.headers, "content-length": String(payload.length) },
          agent: httpsAgent,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    }).catch((err: unknown) => {
      throw connectError(url, err);
    });
    if (answer.status < 200 || answer.status >= 300)
      throw refusal(path, answer.status, answer.body.toString("utf8"), options.keyHint);
    return answer;
  }

  async function call<S extends z.ZodType>(path: string, body: unknown, schema: S): Promise<z.infer<S>> {
    const answer = await request("POST", path, Buffer.from(JSON.stringify(body)), {
      "content-type": "application/json",
    });
    const text = answer.body.toString("utf8");
    const parsed = schema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new FerryError(
        "CONTROL_PLANE_BAD_ANSWER",
        `the control plane's answer to ${path} does not match what this Ferry expects (${parsed.error.message.slice(0, 300)}): the versions differ, update the older side`,
      );
    }
    return parsed.data;
  }

  return {
    call,
    request,
    trustedCaPem: async () => (await getAgent()).caPem,
    close: () => {
      void agent?.then((a) => a.agent.destroy()).catch(() => {});
    },
  };
}
