/**
 * AWS Signature Version 4, the server's side: rebuild the canonical request
 * from what arrived on the wire, exactly as the signer built it.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 */
import { createHash, createHmac } from "node:crypto";

/** A request as received: raw path and query, headers in arrival order (duplicates kept). */
export interface WireRequest {
  method: string;
  /** The path exactly as on the request line (still percent-encoded), without the query. */
  path: string;
  /** The raw query string without `?` ("" when none). */
  query: string;
  headers: [string, string][];
  body: Uint8Array;
}

export const ALGORITHM = "AWS4-HMAC-SHA256";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** RFC 3986 encoding as AWS specifies it: everything but A–Z a–z 0–9 - _ . ~ */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical URI for every service but S3: dot segments and empty
 * segments removed, then each segment URI-encoded once more (the path on the
 * wire is already encoded once, so this is AWS's "encode twice").
 */
export function canonicalUri(path: string): string {
  const segments: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") segments.pop();
    else segments.push(seg);
  }
  const trailing = segments.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${segments.map(uriEncode).join("/")}${trailing}`;
}

function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function canonicalQuery(query: string): string {
  if (query === "") return "";
  const pairs: [string, string][] = [];
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? "" : part.slice(eq + 1);
    pairs.push([uriEncode(decodeComponent(k)), uriEncode(decodeComponent(v))]);
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Header values of one name joined with ",", each trimmed with inner runs of spaces collapsed. */
export function headerValues(headers: [string, string][], name: string): string | undefined {
  const values = headers
    .filter(([n]) => n.toLowerCase() === name)
    .map(([, v]) => v.trim().replace(/\s+/g, " "));
  return values.length ? values.join(",") : undefined;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function canonicalRequest(req: WireRequest, signedHeaders: string[], payloadHash: string): string {
  const headerLines = signedHeaders.map((h) => `${h}:${headerValues(req.headers, h) ?? ""}\n`).join("");
  return [
    req.method.toUpperCase(),
    canonicalUri(req.path),
    canonicalQuery(req.query),
    headerLines,
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join("\n");
}

/** Derived keys by secret and scope: they change once a day, and each costs four HMACs. */
const derivedKeys = new Map<string, Buffer>();
const MAX_DERIVED_KEYS = 10_000;

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const id = `${secret}\u0000${date}\u0000${region}\u0000${service}`;
  let key = derivedKeys.get(id);
  if (!key) {
    if (derivedKeys.size >= MAX_DERIVED_KEYS) derivedKeys.clear();
    key = deriveSigningKey(secret, date, region, service);
    derivedKeys.set(id, key);
  }
  return key;
}

function deriveSigningKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = createHmac("sha256", `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac("sha256", kDate).update(region).digest();
  const kService = createHmac("sha256", kRegion).update(service).digest();
  return createHmac("sha256", kService).update("aws4_request").digest();
}

export function signature(key: Buffer, sts: string): string {
  return createHmac("sha256", key).update(sts).digest("hex");
}
