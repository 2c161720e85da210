import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecretBox, loadMasterKey } from "./secret-box.ts";
import { createTestPlane } from "../testing.ts";
import { FerryError } from "../../lib/errors.ts";

test("secrets are sealed at rest: not in the database, bound to their key id", async () => {
  const t = await createTestPlane();
  try {
    const key = await t.cp.accessKeys.create("install", "at rest");
    const rows = await t.cp.store.sql.query<{ access_key_id: string; secret_ciphertext: string }>(
      `SELECT access_key_id, secret_ciphertext FROM access_keys`,
    );
    for (const r of rows) assert.ok(!r.secret_ciphertext.includes(key.secretAccessKey));
    const dbBytes = ["ferry.db", "ferry.db-wal"]
      .map((f) => join(t.cp.options.dataDir, f))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, "latin1"))
      .join("");
    assert.ok(!dbBytes.includes(key.secretAccessKey), "no plaintext secret in the database files");
    assert.equal((await t.cp.accessKeys.resolve(key.accessKeyId))?.secret, key.secretAccessKey);
    assert.equal(statSync(join(t.cp.options.dataDir, "master.key")).mode & 0o777, 0o600);
  } finally {
    await t.close();
  }
});

test("a ciphertext moved to another key id, or opened with another master key, does not open", () => {
  const box = createSecretBox(randomBytes(32));
  const sealed = box.seal("s3cret", "FKOPAAAA");
  assert.equal(box.open(sealed, "FKOPAAAA"), "s3cret");
  assert.throws(
    () => box.open(sealed, "FKOPBBBB"),
    (e: unknown) => e instanceof FerryError && e.code === "MASTER_KEY_MISMATCH",
  );
  assert.throws(() => createSecretBox(randomBytes(32)).open(sealed, "FKOPAAAA"), /master key differs/);
});

test("master key: from FERRY_MASTER_KEY, else a 0600 file created once", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-mk-"));
  try {
    const file = join(dir, "sub", "master.key");
    const a = loadMasterKey(file, undefined);
    assert.deepEqual(loadMasterKey(file, undefined), a, "stable across loads");
    const env = randomBytes(32).toString("base64");
    assert.equal(loadMasterKey(file, env).toString("base64"), env);
    assert.throws(() => loadMasterKey(file, "c2hvcnQ="), /32 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
