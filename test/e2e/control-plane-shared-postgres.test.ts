/**
 * Several `ferry server` processes on one PostgreSQL: concurrent
 * registrations of the same machines through different servers give one
 * source server each, and concurrent updates through both never lose a write.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../src/control/index.ts";
import type { ServerHandle } from "../../src/control/index.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { registration } from "../../src/control/testing.ts";
import type { Credentials } from "../../src/control/testing.ts";
import type { TestPostgres } from "../../src/control/store/testing-postgres.ts";
import {
  createDatabase,
  findPostgresBin,
  startTestPostgres,
} from "../../src/control/store/testing-postgres.ts";
import { agentCall, sdkDriver } from "./control-plane-drivers.ts";

const skip = findPostgresBin() ? false : "PostgreSQL not installed (scripts/install-debs.sh installs it)";
let pg: TestPostgres | undefined;
before(async () => {
  if (!skip) pg = await startTestPostgres();
});
after(async () => {
  await pg?.stop();
});

test(
  "two servers on one PostgreSQL stay consistent under concurrent writes",
  { skip, timeout: 120_000 },
  async () => {
    const databaseUrl = await createDatabase(pg!.url, `shared_${process.pid}`);
    const masterKey = randomBytes(32).toString("base64");
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), "ferry-shared-")));
    const servers: ServerHandle[] = [];
    const clients: ReturnType<typeof sdkDriver>[] = [];
    try {
      for (const dir of dirs) {
        servers.push(
          await startServer({
            dataDir: dir,
            databaseUrl,
            masterKey,
            port: 0,
            logger: silentLogger,
            certNames: ["127.0.0.1"],
          }),
        );
      }
      const eps = servers.map((s) => ({ url: s.url, caFile: s.caFile, region: "us-east-1" }));
      const operator: Credentials = await servers[0]!.controlPlane.accessKeys.create("operator", "shared");
      const install: Credentials = await servers[1]!.controlPlane.accessKeys.create("install", "shared");
      for (const ep of eps) clients.push(sdkDriver(ep, operator));
      await Promise.all(clients.map((c) => c.call("InitializeService")));

      // Ten machines, each registering through both servers at once.
      const regs = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          agentCall(eps[i % 2]!, install, "/ferry/agent/register", registration(`shared-machine-${i >> 1}`)),
        ),
      );
      for (const r of regs) assert.equal(r.status, 200, JSON.stringify(r.body));
      const ids = new Set(regs.map((r) => r.body.sourceServerID as string));
      assert.equal(ids.size, 10, "one source server per machine identity");
      const listed = (await clients[1]!.call("DescribeSourceServers", {})) as {
        items: { sourceServerID: string; arn: string }[];
      };
      assert.deepEqual(listed.items.map((s) => s.sourceServerID).sort(), [...ids].sort());

      // Twenty tag writes on one server, alternating between the two processes.
      const arn = listed.items[0]!.arn;
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          clients[i % 2]!.call("TagResource", { resourceArn: arn, tags: { [`k${i}`]: `v${i}` } }),
        ),
      );
      const tags = (await clients[0]!.call("ListTagsForResource", { resourceArn: arn })).tags as Record<
        string,
        string
      >;
      assert.equal(Object.keys(tags).length, 20, "no tag write lost");
    } finally {
      for (const c of clients) c.destroy();
      for (const s of servers) await s.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  },
);
