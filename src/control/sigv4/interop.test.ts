/**
 * Property tests against AWS's own signer (@smithy/signature-v4, the one in
 * @aws-sdk/client-mgn): any request it signs — random paths, query strings
 * and header values, including reserved, unicode and repeated characters —
 * verifies; changing any byte of the body, the query or a signed header makes
 * it fail.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import type { WireRequest } from "./canonical.ts";
import { verifySigV4 } from "./verify.ts";
import { FerryError } from "../../lib/errors.ts";

const creds = { accessKeyId: "FKOPTESTKEY", secretAccessKey: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" };
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const signer = new SignatureV4({ credentials: creds, region: "eu-west-3", service: "mgn", sha256: Sha256 });
const opts = {
  service: "mgn",
  region: "eu-west-3",
  now: NOW,
  lookupSecret: async (id: string) => (id === creds.accessKeyId ? creds.secretAccessKey : undefined),
};

const segment = fc
  .string({ unit: fc.constantFrom(..."abcXYZ019-_.~:@!$&'()*+,;= %/?#éሴ"), minLength: 1, maxLength: 12 })
  .filter((s) => s !== "." && s !== "..");
const headerValue = fc
  .string({ unit: fc.constantFrom(..."abc XYZ 019 -_.,;:=\"'/"), minLength: 1, maxLength: 20 })
  .map((s) => s.trim())
  .filter((s) => s.length > 0);

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "DELETE"),
  segments: fc.array(segment, { minLength: 1, maxLength: 4 }),
  query: fc.dictionary(
    fc.string({ unit: fc.constantFrom(..."abKQ_-.~ሴ% &="), minLength: 1, maxLength: 6 }),
    fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 3 }),
    { maxKeys: 3 },
  ),
  headers: fc.dictionary(fc.constantFrom("x-ferry-a", "x-ferry-b", "content-type"), headerValue, {
    maxKeys: 3,
  }),
  body: fc.uint8Array({ maxLength: 64 }),
});

interface GeneratedRequest {
  method: string;
  segments: string[];
  query: Record<string, string[]>;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Signs with AWS's signer, then turns the signed request into what arrives on the wire. */
async function signedWire(r: GeneratedRequest): Promise<WireRequest> {
  // The SDK serializers percent-encode each path label before signing; do the same.
  const path = `/${r.segments.map((s) => encodeURIComponent(s)).join("/")}`;
  const signed = await signer.sign(
    {
      method: r.method,
      protocol: "https:",
      hostname: "mgn.ferry.test",
      path,
      query: r.query,
      headers: { host: "mgn.ferry.test", ...r.headers },
      body: r.body,
    },
    { signingDate: new Date(NOW) },
  );
  const query = Object.entries(r.query)
    .flatMap(([k, vs]) => vs.map((v) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
    .join("&");
  return {
    method: r.method,
    path,
    query,
    headers: Object.entries(signed.headers as Record<string, string>),
    body: r.body,
  };
}

test("anything AWS's signer signs, Ferry verifies", async () => {
  await fc.assert(
    fc.asyncProperty(requestArb, async (r) => {
      assert.deepEqual(await verifySigV4(await signedWire(r), opts), { accessKeyId: creds.accessKeyId });
    }),
    { numRuns: 300 },
  );
});

async function refused(req: WireRequest): Promise<boolean> {
  try {
    await verifySigV4(req, opts);
    return false;
  } catch (err) {
    return err instanceof FerryError && err.code === "InvalidSignatureException";
  }
}

test("a changed body byte, query or signed header value is refused", async () => {
  await fc.assert(
    fc.asyncProperty(requestArb, fc.nat(), fc.integer({ min: 1, max: 255 }), async (r, at, flip) => {
      const wire = await signedWire(r);
      if (wire.body.length > 0) {
        const body = Uint8Array.from(wire.body);
        body[at % body.length]! ^= flip;
        assert.ok(await refused({ ...wire, body }), "body");
      }
      assert.ok(await refused({ ...wire, query: wire.query ? `${wire.query}&x=1` : "x=1" }), "query");
      const headers = wire.headers.map(([k, v]): [string, string] => [
        k,
        k.toLowerCase() === "host" ? `evil.${v}` : v,
      ]);
      assert.ok(await refused({ ...wire, headers }), "host header");
    }),
    { numRuns: 150 },
  );
});
