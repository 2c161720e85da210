import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "./main.ts";
import { parseListen } from "./server.ts";
import { createTestPlane, registration } from "../control/testing.ts";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
  stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const code = await main(args, {
    stdout,
    stderr,
    isTTY: false,
    env: {},
    signal: new AbortController().signal,
  });
  return { code, out, err };
}

test("parseListen accepts host:port, [v6]:port and port; refuses junk", () => {
  assert.deepEqual(parseListen("0.0.0.0:8443"), { host: "0.0.0.0", port: 8443 });
  assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListen("9000"), { host: "127.0.0.1", port: 9000 });
  assert.throws(() => parseListen("host:99999"), /not HOST:PORT/);
  assert.throws(() => parseListen("a:b:c"), /not HOST:PORT/);
});

test("ferry access-key create|list|delete", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-cli-keys-"));
  try {
    const created = await run([
      "access-key",
      "create",
      "--scope",
      "install",
      "--description",
      "lab",
      "--json",
      "--data-dir",
      dir,
    ]);
    assert.equal(created.code, 0, created.err);
    const key = JSON.parse(created.out) as { accessKeyId: string; secretAccessKey: string; scope: string };
    assert.equal(key.scope, "install");
    assert.ok(key.secretAccessKey.length >= 40);
    const listed = await run(["access-key", "list", "--json", "--data-dir", dir]);
    const keys = JSON.parse(listed.out) as { accessKeyId: string; secretAccessKey?: string }[];
    assert.deepEqual(
      keys.map((k) => k.accessKeyId),
      [key.accessKeyId],
    );
    assert.equal(keys[0]!.secretAccessKey, undefined, "list never shows secrets");
    assert.equal((await run(["access-key", "delete", key.accessKeyId, "--data-dir", dir])).code, 0);
    const again = await run(["access-key", "delete", key.accessKeyId, "--data-dir", dir]);
    assert.equal(again.code, 1);
    assert.match(again.err, /does not exist/);
    const badScope = await run(["access-key", "create", "--scope", "root", "--data-dir", dir]);
    assert.equal(badScope.code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ferry source-server list|describe read the store", async () => {
  const t = await createTestPlane();
  try {
    await t.call("/InitializeService");
    const install = await t.cp.accessKeys.create("install", "x");
    const reg = await t.call("/ferry/agent/register", registration("cli-machine-1"), { creds: install });
    const id = reg.body.sourceServerID as string;
    const dir = t.cp.options.dataDir;
    const list = await run(["source-server", "list", "--data-dir", dir]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, new RegExp(`${id}\\thost-cli-mach\\tNOT_READY\\tINITIATING`));
    const one = await run(["source-server", "describe", id, "--data-dir", dir]);
    assert.equal((JSON.parse(one.out) as { sourceServerID: string }).sourceServerID, id);
    const missing = await run(["source-server", "describe", "s-0123456789abcdef0", "--data-dir", dir]);
    assert.equal(missing.code, 1);
  } finally {
    await t.close();
  }
});
