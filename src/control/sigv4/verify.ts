/**
 * Verifies a SigV4 `Authorization` header: the credential scope (date,
 * configured region, service), the signed headers, the payload hash
 * (`x-amz-content-sha256` when sent, including UNSIGNED-PAYLOAD), a 5-minute
 * clock window, and the signature itself in constant time. Failures are MGN-
 * style errors: IncompleteSignatureException, InvalidSignatureException,
 * UnrecognizedClientException, MissingAuthenticationTokenException.
 */
import { timingSafeEqual } from "node:crypto";
import type { WireRequest } from "./canonical.ts";
import {
  ALGORITHM,
  UNSIGNED_PAYLOAD,
  canonicalRequest,
  headerValues,
  sha256Hex,
  signature,
  signingKey,
  stringToSign,
} from "./canonical.ts";
import { authError } from "../../model/api-errors.ts";

export const DEFAULT_CLOCK_WINDOW_MS = 5 * 60 * 1000;

export interface VerifyOptions {
  service: string;
  region: string;
  now: number;
  clockWindowMs?: number;
  /** The secret for an access key id, or undefined if the key is unknown. */
  lookupSecret(accessKeyId: string): Promise<string | undefined>;
}

export interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

export function parseAuthorization(header: string): ParsedAuthorization {
  if (!header.startsWith(`${ALGORITHM} `)) {
    throw authError(
      "IncompleteSignatureException",
      `Authorization header must use ${ALGORITHM}; got '${header.split(" ")[0]}'.`,
    );
  }
  const fields = new Map<string, string>();
  for (const part of header.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential");
  const signed = fields.get("SignedHeaders");
  const sig = fields.get("Signature");
  if (!credential || !signed || !sig) {
    throw authError(
      "IncompleteSignatureException",
      "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
    );
  }
  const scope = credential.split("/");
  if (scope.length !== 5)
    throw authError(
      "IncompleteSignatureException",
      `Credential '${credential}' must be <key>/<date>/<region>/<service>/aws4_request.`,
    );
  const [accessKeyId, date, region, service, terminator] = scope as [string, string, string, string, string];
  return {
    accessKeyId,
    date,
    region,
    service,
    terminator,
    signedHeaders: signed.split(";"),
    signature: sig,
  };
}

function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

/** Returns the access key id that signed `req`, or throws the matching MGN-style error. */
export async function verifySigV4(req: WireRequest, opts: VerifyOptions): Promise<{ accessKeyId: string }> {
  const header = headerValues(req.headers, "authorization");
  if (!header) {
    throw authError(
      "MissingAuthenticationTokenException",
      "Missing Authentication Token: sign the request with AWS Signature Version 4.",
    );
  }
  const auth = parseAuthorization(header);
  const amzDate = headerValues(req.headers, "x-amz-date");
  if (!amzDate)
    throw authError("IncompleteSignatureException", "The request must carry an X-Amz-Date header.");
  const t = parseAmzDate(amzDate);
  if (t === undefined)
    throw authError(
      "IncompleteSignatureException",
      `X-Amz-Date '${amzDate}' is not in the form YYYYMMDDTHHMMSSZ.`,
    );
  const window = opts.clockWindowMs ?? DEFAULT_CLOCK_WINDOW_MS;
  if (Math.abs(opts.now - t) > window) {
    throw authError(
      "InvalidSignatureException",
      `Signature expired: ${amzDate} is more than ${window / 60000} minutes from the server time ${new Date(opts.now).toISOString()}. Check the client's clock.`,
    );
  }
  if (auth.date !== amzDate.slice(0, 8)) {
    throw authError(
      "InvalidSignatureException",
      `Credential date ${auth.date} does not match X-Amz-Date ${amzDate}.`,
    );
  }
  if (auth.region !== opts.region) {
    throw authError(
      "InvalidSignatureException",
      `Credential should be scoped to a valid region: '${auth.region}' is wrong, expecting '${opts.region}'.`,
    );
  }
  if (auth.service !== opts.service) {
    throw authError(
      "InvalidSignatureException",
      `Credential should be scoped to the correct service: '${auth.service}' is wrong, expecting '${opts.service}'.`,
    );
  }
  if (auth.terminator !== "aws4_request") {
    throw authError(
      "InvalidSignatureException",
      `Credential should be scoped with a valid terminator: 'aws4_request', not '${auth.terminator}'.`,
    );
  }
  const sorted = [...auth.signedHeaders].sort();
  if (auth.signedHeaders.some((h, i) => h !== h.toLowerCase() || h !== sorted[i])) {
    throw authError("IncompleteSignatureException", "SignedHeaders must be lowercase and sorted.");
  }
  for (const required of ["host", "x-amz-date"]) {
    if (!auth.signedHeaders.includes(required))
      throw authError("InvalidSignatureException", `The '${required}' header must be signed.`);
  }
  for (const h of auth.signedHeaders) {
    if (headerValues(req.headers, h) === undefined)
      throw authError("InvalidSignatureException", `Signed header '${h}' is missing from the request.`);
  }
  const bodyHash = sha256Hex(req.body);
  const declared = headerValues(req.headers, "x-amz-content-sha256");
  if (declared !== undefined && declared !== UNSIGNED_PAYLOAD && declared !== bodyHash) {
    throw authError(
      "InvalidSignatureException",
      "The x-amz-content-sha256 header does not match the SHA-256 of the body.",
    );
  }
  const payloadHash = declared ?? bodyHash;

  const secret = await opts.lookupSecret(auth.accessKeyId);
  if (secret === undefined) {
    throw authError(
      "UnrecognizedClientException",
      `The security token included in the request is invalid: access key ${auth.accessKeyId} is unknown.`,
    );
  }
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const sts = stringToSign(amzDate, scope, canonicalRequest(req, auth.signedHeaders, payloadHash));
  const expected = Buffer.from(
    signature(signingKey(secret, auth.date, auth.region, auth.service), sts),
    "hex",
  );
  const given = /^[0-9a-f]{64}$/.test(auth.signature) ? Buffer.from(auth.signature, "hex") : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw authError(
      "InvalidSignatureException",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    );
  }
  return { accessKeyId: auth.accessKeyId };
}
