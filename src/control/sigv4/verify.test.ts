import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { WireRequest } from "./canonical.ts";
import { canonicalRequest, headerValues, sha256Hex, stringToSign } from "./canonical.ts";
import { parseAuthorization, verifySigV4 } from "./verify.ts";
import { FerryError } from "../../lib/errors.ts";

interface Vector {
  name: string;
  req: string;
  creq?: string;
  sts: string;
  authz: string;
}
const suite = JSON.parse(
  readFileSync(new URL("./fixtures/aws-sig-v4-test-suite.json", import.meta.url), "utf8"),
) as {
  config: { service: string; region: string; accessKeyId: string; secretAccessKey: string };
  tests: Vector[];
};
const VECTOR_TIME = Date.UTC(2015, 7, 30, 12, 36, 0);

/** Parses the suite's raw `.req` text: request line, headers, blank line, body. */
function parseReq(raw: string, authz?: string): WireRequest {
  const [head, ...bodyParts] = raw.split("\n\n");
  const lines = head!.split("\n");
  const first = lines.shift()!;
  const method = first.slice(0, first.indexOf(" "));
  const uri = first.slice(method.length + 1, first.lastIndexOf(" "));
  const q = uri.indexOf("?");
  const headers: [string, string][] = lines.map((l) => {
    const c = l.indexOf(":");
    return [l.slice(0, c), l.slice(c + 1)];
  });
  if (authz) headers.push(["Authorization", authz]);
  return {
    method,
    path: q < 0 ? uri : uri.slice(0, q),
    query: q < 0 ? "" : uri.slice(q + 1),
    headers,
    body: Buffer.from(bodyParts.join("\n\n")),
  };
}

const lookup = async (id: string) =>
  id === suite.config.accessKeyId ? suite.config.secretAccessKey : undefined;
const opts = {
  service: suite.config.service,
  region: suite.config.region,
  now: VECTOR_TIME,
  lookupSecret: lookup,
};

test("the suite holds the vectors we rely on", () => {
  assert.ok(suite.tests.length >= 20);
});

for (const v of suite.tests) {
  test(`SigV4 known answer: ${v.name}`, async () => {
    const req = parseReq(v.req, v.authz);
    const auth = parseAuthorization(v.authz);
    const creq = canonicalRequest(req, auth.signedHeaders, sha256Hex(req.body));
    if (v.creq) assert.equal(creq, v.creq, "canonical request");
    assert.equal(
      stringToSign(
        headerValues(req.headers, "x-amz-date")!,
        `${auth.date}/${auth.region}/${auth.service}/aws4_request`,
        creq,
      ),
      v.sts,
      "string to sign",
    );
    assert.deepEqual(await verifySigV4(req, opts), { accessKeyId: "AKIDEXAMPLE" });
  });
}

async function rejected(p: Promise<unknown>, code: string): Promise<FerryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FerryError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const vanilla = suite.tests.find((t) => t.name === "post-vanilla-query")!;
const form = suite.tests.find((t) => t.name === "post-x-www-form-urlencoded")!;

test("a changed signature is refused", async () => {
  const authz = vanilla.authz.replace(
    /Signature=(.)/,
    (_m, c: string) => `Signature=${c === "0" ? "1" : "0"}`,
  );
  await rejected(verifySigV4(parseReq(vanilla.req, authz), opts), "InvalidSignatureException");
});

test("a tampered body is refused", async () => {
  const req = parseReq(form.req, form.authz);
  req.body = Buffer.from("Param1=value2");
  await rejected(verifySigV4(req, opts), "InvalidSignatureException");
});

test("a tampered query is refused", async () => {
  const req = parseReq(vanilla.req, vanilla.authz);
  req.query = "Param1=value2";
  await rejected(verifySigV4(req, opts), "InvalidSignatureException");
});

test("the 5-minute clock window: inside accepted, outside refused both ways", async () => {
  const req = parseReq(vanilla.req, vanilla.authz);
  for (const skew of [-4 * 60_000, 4 * 60_000, 299_000])
    await verifySigV4(req, { ...opts, now: VECTOR_TIME + skew });
  for (const skew of [-6 * 60_000, 6 * 60_000, 16 * 60_000, -16 * 60_000]) {
    const e = await rejected(
      verifySigV4(req, { ...opts, now: VECTOR_TIME + skew }),
      "InvalidSignatureException",
    );
    assert.match(e.message, /Signature expired/);
  }
});

test("an unknown access key is refused as UnrecognizedClientException", async () => {
  await rejected(
    verifySigV4(parseReq(vanilla.req, vanilla.authz), { ...opts, lookupSecret: async () => undefined }),
    "UnrecognizedClientException",
  );
});

test("a scope for another region or service is refused", async () => {
  const req = parseReq(vanilla.req, vanilla.authz);
  await rejected(verifySigV4(req, { ...opts, region: "eu-west-1" }), "InvalidSignatureException");
  await rejected(verifySigV4(req, { ...opts, service: "mgn" }), "InvalidSignatureException");
});

test("missing or malformed Authorization", async () => {
  await rejected(verifySigV4(parseReq(vanilla.req), opts), "MissingAuthenticationTokenException");
  await rejected(
    verifySigV4(parseReq(vanilla.req, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830"), opts),
    "IncompleteSignatureException",
  );
});

test("x-amz-content-sha256: a wrong hash is refused, UNSIGNED-PAYLOAD is part of what is signed", async () => {
  const req = parseReq(form.req, form.authz);
  req.headers.push(["x-amz-content-sha256", sha256Hex("other")]);
  await rejected(verifySigV4(req, opts), "InvalidSignatureException");
  // UNSIGNED-PAYLOAD replaces the body hash in the canonical request, so the
  // suite's signature (over the real hash) no longer matches.
  const unsigned = parseReq(form.req, form.authz);
  unsigned.headers.push(["x-amz-content-sha256", "UNSIGNED-PAYLOAD"]);
  await rejected(verifySigV4(unsigned, opts), "InvalidSignatureException");
});
