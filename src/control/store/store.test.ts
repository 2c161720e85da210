/**
 * One contract suite, run against every store backend: SQLite (in a temp
 * file) and PostgreSQL (a real server started for the test).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Store } from "./store.ts";
import { createStore } from "./store.ts";
import { openSqlite } from "./sqlite.ts";
import { openPostgres } from "./postgres.ts";
import { MIGRATIONS, migrate } from "./migrations.ts";
import { readLivenessSettings, writeLivenessSettings } from "./settings.ts";
import type { TestPostgres } from "./testing-postgres.ts";
import { createDatabase, findPostgresBin, startTestPostgres } from "./testing-postgres.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";

function record(id: string, identity: string): SourceServerRecord {
  return {
    sourceServerID: id,
    arn: `arn:aws:mgn:us-east-1:000000000000:source-server/${id}`,
    isArchived: false,
    tags: {},
    replicationType: "AGENT_BASED",
    sourceProperties: {},
    lifeCycle: { state: "NOT_READY" },
    replication: { control: "RUNNING" },
    agent: { identity, registeredAt: 1 },
    replicationConfiguration: { sourceServerID: id },
    launchConfiguration: { sourceServerID: id },
  };
}

let dbCounter = 0;

function contract(
  name: string,
  open: () => Promise<{ store: Store; reopen: () => Promise<Store>; done: () => Promise<void> }>,
) {
  describe(`store contract: ${name}`, () => {
    test("migrations are idempotent and versioned", async () => {
      const { store, done } = await open();
      try {
        assert.equal(await migrate(store.sql), 0, "already applied");
        const rows = await store.sql.query<{ version: number }>(
          `SELECT version FROM schema_migrations ORDER BY version`,
        );
        assert.deepEqual(
          rows.map((r) => Number(r.version)),
          MIGRATIONS.map((m) => m.version),
        );
      } finally {
        await done();
      }
    });

    test("initialize is idempotent", async () => {
      const { store, done } = await open();
      try {
        assert.equal(await store.isInitialized(), false);
        await store.initialize(1);
        await store.initialize(2);
        assert.equal(await store.isInitialized(), true);
      } finally {
        await done();
      }
    });

    test("documents: insert, get, list in creation order, update, delete; identity unique", async () => {
      const { store, reopen, done } = await open();
      try {
        assert.equal(
          await store.sourceServers.insertWithIdentity(record("s-00000000000000002", "id-b"), "id-b", 20),
          true,
        );
        assert.equal(
          await store.sourceServers.insertWithIdentity(record("s-00000000000000001", "id-a"), "id-a", 10),
          true,
        );
        assert.equal(
          await store.sourceServers.insertWithIdentity(record("s-00000000000000003", "id-a"), "id-a", 30),
          false,
        );
        assert.deepEqual(
          (await store.sourceServers.list()).map((r) => r.sourceServerID),
          ["s-00000000000000001", "s-00000000000000002"],
        );
        assert.equal(
          (await store.sourceServers.findByIdentity("id-b"))?.sourceServerID,
          "s-00000000000000002",
        );
        const u = await store.sourceServers.update("s-00000000000000001", (r) => ({
          ...r,
          isArchived: true,
        }));
        assert.equal(u?.isArchived, true);
        assert.equal(await store.sourceServers.update("s-missing", (r) => r), undefined);
        await assert.rejects(
          store.sourceServers.update("s-00000000000000001", () => {
            throw new Error("refused");
          }),
          /refused/,
        );
        const again = await reopen();
        assert.equal(
          (await again.sourceServers.get("s-00000000000000001"))?.isArchived,
          true,
          "durable across reopen",
        );
        assert.equal(await store.sourceServers.delete("s-00000000000000001"), true);
        assert.equal(await store.sourceServers.delete("s-00000000000000001"), false);
      } finally {
        await done();
      }
    });

    test("concurrent updates never lose a write (row versions)", async () => {
      const { store, reopen, done } = await open();
      try {
        await store.sourceServers.insertWithIdentity(record("s-0000000000000000c", "id-c"), "id-c", 1);
        const other = await reopen();
        const bump = (s: Store) =>
          s.sourceServers.update("s-0000000000000000c", (r) => ({
            ...r,
            tags: { n: String(Number(r.tags.n ?? "0") + 1) },
          }));
        await Promise.all(Array.from({ length: 15 }, (_, i) => bump(i % 2 ? store : other)));
        assert.equal((await store.sourceServers.get("s-0000000000000000c"))?.tags.n, "15");
      } finally {
        await done();
      }
    });

    test("access keys: insert, get, list, delete, delete by server", async () => {
      const { store, done } = await open();
      try {
        await store.accessKeys.insert({
          accessKeyId: "K1",
          scope: "operator",
          description: "a",
          secretCiphertext: "v1:x",
          createdAt: 1,
        });
        await store.accessKeys.insert({
          accessKeyId: "K2",
          scope: "agent",
          sourceServerID: "s-1",
          description: "b",
          secretCiphertext: "v1:y",
          createdAt: 2,
        });
        assert.deepEqual(await store.accessKeys.get("K2"), {
          accessKeyId: "K2",
          scope: "agent",
          sourceServerID: "s-1",
          description: "b",
          secretCiphertext: "v1:y",
          createdAt: 2,
        });
        assert.deepEqual(
          (await store.accessKeys.list()).map((k) => k.accessKeyId),
          ["K1", "K2"],
        );
        assert.equal(await store.accessKeys.deleteForServer("s-1"), 1);
        assert.equal(await store.accessKeys.delete("K1"), true);
        assert.deepEqual(await store.accessKeys.list(), []);
      } finally {
        await done();
      }
    });

    test("settings: the running server's liveness thresholds, written, replaced, read by another opener", async () => {
      const { store, reopen, done } = await open();
      try {
        assert.equal(await readLivenessSettings(store), undefined, "nothing before a server started");
        await writeLivenessSettings(
          store,
          { agentNotSeenAfterSeconds: 20, replicatorNotSeenAfterSeconds: 60 },
          1,
        );
        await writeLivenessSettings(
          store,
          { agentNotSeenAfterSeconds: 7, replicatorNotSeenAfterSeconds: 45 },
          2,
        );
        assert.deepEqual(await readLivenessSettings(await reopen()), {
          agentNotSeenAfterSeconds: 7,
          replicatorNotSeenAfterSeconds: 45,
        });
        // A value this version cannot read (another version wrote it) counts as absent.
        await store.settings.put("liveness", { agentNotSeenAfterSeconds: "soon" }, 3);
        assert.equal(await readLivenessSettings(store), undefined);
      } finally {
        await done();
      }
    });
  });
}

contract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-store-"));
  const path = join(dir, "ferry.db");
  const opened: Store[] = [];
  const openOne = async () => {
    const s = await createStore(openSqlite(path));
    opened.push(s);
    return s;
  };
  return {
    store: await openOne(),
    reopen: openOne,
    done: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const pgBin = findPostgresBin();
describe(
  "postgresql backend",
  { skip: pgBin ? false : "PostgreSQL not installed (scripts/install-debs.sh installs it)" },
  () => {
    let pg: TestPostgres | undefined;
    before(async () => {
      pg = await startTestPostgres();
    });
    after(async () => {
      await pg?.stop();
    });
    contract("postgresql", async () => {
      const url = await createDatabase(pg!.url, `store_${process.pid}_${++dbCounter}`);
      const opened: Store[] = [];
      const openOne = async () => {
        const s = await createStore(openPostgres(url, { max: 4 }));
        opened.push(s);
        return s;
      };
      return {
        store: await openOne(),
        reopen: openOne,
        done: async () => {
          for (const s of opened) await s.close();
        },
      };
    });
  },
);
