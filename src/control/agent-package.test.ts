import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import { createTestPlane, type Credentials, type TestPlane } from "./testing.ts";
import { MAX_PUBLISH_BYTES, resolveAgentPackageDir } from "./agent-package.ts";

const HOST = "mgn.ferry.test";

async function send(
  t: TestPlane,
  method: string,
  path: string,
  o: { creds?: Credentials; body?: Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  const body = o.body ?? new Uint8Array();
  let headers: Record<string, string> = { host: HOST, ...o.headers };
  if (o.creds) {
    const signer = new SignatureV4({
      credentials: o.creds,
      region: t.cp.options.region,
      service: "mgn",
      sha256: Sha256,
    });
    const signed = await signer.sign(
      { method, protocol: "https:", hostname: HOST, path, query: {}, headers, body },
      { signingDate: new Date(t.clock.now) },
    );
    headers = signed.headers as Record<string, string>;
  }
  return t.cp.app.request(`https://${HOST}${path}`, {
    method,
    headers,
    ...(method === "GET" || method === "HEAD" ? {} : { body }),
  });
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function withPlane(run: (t: TestPlane, install: Credentials) => Promise<void>) {
  const t = await createTestPlane();
  try {
    await run(t, await t.cp.accessKeys.create("install", "package test"));
  } finally {
    await t.close();
  }
}

test("nothing published: a signed download is a 404 that says what to run", async () => {
  await withPlane(async (t, install) => {
    for (const path of ["/ferry/agent/package", "/ferry/agent/package.sha256"]) {
      const res = await send(t, "GET", path, { creds: install });
      assert.equal(res.status, 404);
      assert.equal(res.headers.get("x-amzn-ErrorType"), "ResourceNotFoundException");
      const body = (await res.json()) as { message: string };
      assert.match(body.message, /ferry release publish --endpoint/);
    }
    const installer = await send(t, "GET", "/ferry/agent/ferry-installer-init");
    assert.equal(installer.status, 404);
  });
});

test("the package needs a signature; the installer script does not", async () => {
  await withPlane(async (t) => {
    const unsigned = await send(t, "GET", "/ferry/agent/package");
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get("x-amzn-ErrorType"), "MissingAuthenticationTokenException");
    const wrong = await send(t, "GET", "/ferry/agent/package", {
      creds: { ...t.operator, secretAccessKey: "not-the-secret" },
    });
    assert.equal(wrong.headers.get("x-amzn-ErrorType"), "InvalidSignatureException");
  });
});

test("publish: operator only, hash checked before anything is kept, then served byte for byte", async () => {
  await withPlane(async (t, install) => {
    const dir = resolveAgentPackageDir(t.cp.options.dataDir, {});
    const pkg = new Uint8Array(300_000).map((_, i) => (i * 7919) & 0xff);
    const hash = sha256(pkg);
    const put = (creds: Credentials, declared: string, body = pkg) =>
      send(t, "PUT", "/ferry/agent/package", {
        creds,
        body,
        headers: { "x-ferry-sha256": declared, "x-ferry-agent-version": "9.8.7" },
      });

    const asInstall = await put(install, hash);
    assert.equal(asInstall.status, 403);
    assert.equal(asInstall.headers.get("x-amzn-ErrorType"), "AccessDeniedException");

    const damaged = await put(t.operator, sha256(pkg.subarray(1)));
    assert.equal(damaged.status, 400);
    assert.match(((await damaged.json()) as { message: string }).message, /damaged on the way/);

    const noHash = await put(t.operator, "");
    assert.equal(noHash.status, 400);
    assert.deepEqual(await readdir(dir).catch(() => []), [], "a refused publish kept something");

    const ok = await put(t.operator, hash.toUpperCase());
    assert.equal(ok.status, 200, await ok.clone().text());
    const kept = (await ok.json()) as { sha256: string; bytes: number; version: string };
    assert.deepEqual([kept.sha256, kept.bytes, kept.version], [hash, pkg.length, "9.8.7"]);

    const got = await send(t, "GET", "/ferry/agent/package", { creds: install });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-length"), String(pkg.length));
    assert.equal(got.headers.get("x-ferry-agent-version"), "9.8.7");
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), pkg);
    const sum = await send(t, "GET", "/ferry/agent/package.sha256", { creds: install });
    assert.equal(await sum.text(), `${hash}  ferry-agent-linux-x64.tar.gz\n`);
    const head = await send(t, "HEAD", "/ferry/agent/package", { creds: install });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(pkg.length));

    // A second publish replaces the first whole; no temporary files are left.
    const next = pkg.map((b) => b ^ 1);
    assert.equal((await put(t.operator, sha256(next), next)).status, 200);
    const again = await send(t, "GET", "/ferry/agent/package", { creds: install });
    assert.equal(sha256(new Uint8Array(await again.arrayBuffer())), sha256(next));
    assert.deepEqual((await readdir(dir)).sort(), [
      "ferry-agent-linux-x64.tar.gz",
      "ferry-agent-linux-x64.tar.gz.sha256",
      "release.json",
    ]);
  });
});

test("the installer script: published by an operator, downloaded without a signature", async () => {
  await withPlane(async (t) => {
    const script = new TextEncoder().encode("#!/bin/sh\necho ferry\n");
    const put = await send(t, "PUT", "/ferry/agent/ferry-installer-init", {
      creds: t.operator,
      body: script,
      headers: { "x-ferry-sha256": sha256(script) },
    });
    assert.equal(put.status, 200);
    const got = await send(t, "GET", "/ferry/agent/ferry-installer-init");
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "#!/bin/sh\necho ferry\n");
  });
});

test("an announced oversize publish is refused before the body is read", async () => {
  await withPlane(async (t) => {
    const res = await send(t, "PUT", "/ferry/agent/package", {
      body: new Uint8Array(1),
      headers: { "content-length": String(MAX_PUBLISH_BYTES + 1) },
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { message: string }).message, /the limit is/);
  });
});

test("FERRY_AGENT_PACKAGE_DIR points several servers at one directory", () => {
  assert.equal(resolveAgentPackageDir("/var/lib/ferry", {}), join("/var/lib/ferry", "agent-package"));
  assert.equal(resolveAgentPackageDir("/d", { FERRY_AGENT_PACKAGE_DIR: "/shared/pkg" }), "/shared/pkg");
});
