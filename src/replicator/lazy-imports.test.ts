/**
 * A replicator with a local staging store loads neither the AWS SDK nor the
 * X.509 builder, and none of its own modules loads zod (each costs a running
 * replicator 15–35 MiB): they come in when an s3:// store is first used, when
 * a certificate is created, when a policy file is read.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Imports `modules` in a fresh process after `setup`, runs `body`, and returns each resolved URL with its importer. */
async function loadedBy(script: string): Promise<{ url: string; parent: string }[]> {
  const probe = `
    import { registerHooks } from "node:module";
    const seen = [];
    registerHooks({
      resolve(specifier, context, next) {
        const r = next(specifier, context);
        seen.push({ url: r.url, parent: context.parentURL ?? "" });
        return r;
      },
    });
    ${script}
    process.stdout.write(JSON.stringify(seen));
  `;
  const { stdout } = await run(
    process.execPath,
    ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", probe],
    { cwd: join(import.meta.dirname, "..", ".."), maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as { url: string; parent: string }[];
}

const packages = (seen: { url: string }[]) =>
  new Set(seen.flatMap((s) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(s.url)?.[1] ?? []));

test("a replicator on a local store loads no AWS SDK, no X.509 builder, and no zod of its own", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-lazy-"));
  try {
    // The identity is created first (that needs the X.509 builder), then loaded as a restart does.
    await loadedBy(`
      const { loadOrCreateIdentity } = await import("./src/replicator/identity.ts");
      await loadOrCreateIdentity(${JSON.stringify(dir)});
    `);
    const seen = await loadedBy(`
      const { loadOrCreateIdentity } = await import("./src/replicator/identity.ts");
      const { startReplicator, tokenAuthorizer } = await import("./src/replicator/server.ts");
      const { openStore } = await import("./src/replicator/store/index.ts");
      const id = await loadOrCreateIdentity(${JSON.stringify(dir)});
      if (id.created) throw new Error("the identity was created again");
      const s3 = openStore("s3://ferry-staging/unused", { endpoint: "http://127.0.0.1:9" });
      const rep = await startReplicator({
        dataDir: ${JSON.stringify(dir)},
        store: openStore(${JSON.stringify(join(dir, "store"))}),
        host: "127.0.0.1",
        port: 0,
        tls: id,
        authorize: tokenAuthorizer(id.token),
      });
      await rep.close();
      await s3.close();
    `);
    const loaded = packages(seen);
    assert.ok(loaded.has("@napi-rs/blake-hash"), `the probe saw the replicator's modules: ${[...loaded]}`);
    assert.ok(!loaded.has("@aws-sdk/client-s3"), "the AWS SDK was loaded");
    assert.ok(!loaded.has("@peculiar/x509"), "the X.509 builder was loaded");
    const zodFromReplicator = seen.filter(
      (s) => /node_modules\/zod\//.test(s.url) && /\/src\/replicator\//.test(s.parent),
    );
    assert.deepEqual(
      zodFromReplicator.map((s) => s.parent),
      [],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("an s3:// store loads the AWS SDK when first used", async () => {
  const seen = await loadedBy(`
    const { openStore } = await import("./src/replicator/store/index.ts");
    const store = openStore("s3://ferry-staging/p", { endpoint: "http://127.0.0.1:9", credentials: { accessKeyId: "a", secretAccessKey: "b" }, client: { maxAttempts: 1 } });
    if (!store.location.startsWith("s3://ferry-staging/p/")) throw new Error(store.location);
    await store.close();
    const before = seen.some((s) => s.url.includes("@aws-sdk/client-s3"));
    await store.get("vol/x").catch(() => {});
    if (before) throw new Error("loaded before first use");
  `);
  assert.ok(packages(seen).has("@aws-sdk/client-s3"));
});
