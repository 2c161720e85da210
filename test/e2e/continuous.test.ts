/**
 * Continuous replication: after the initial sync the agent keeps the replica
 * in step with a disk that is being written, reports lag and backlog, and
 * stops cleanly with nothing lost.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { replicateDisk } from "../../src/agent/sync.ts";
import type { ContinuousStatus } from "../../src/agent/continuous.ts";
import { ScanTracker } from "../../src/agent/tracker/index.ts";
import { FerryError } from "../../src/lib/errors.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import { sha256File, stagingImage, startTestReplicator, type TestReplicator } from "../support/data-plane.ts";

const MiB = 1024 * 1024;
const SERVER = "s-contin00000000000";

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("continuous replication", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch();
    rep = await startTestReplicator(join(scratch.dir, "replicator"));
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("with the scan tracker: writes after the initial sync reach the replica; a clean stop loses nothing", async () => {
    const disk = join(scratch.dir, "live.img");
    await writeFile(disk, randomBytes(16 * MiB));
    const tracker = new ScanTracker({
      devicePath: disk,
      stateDir: join(scratch.dir, "tracker"),
      intervalMs: 200,
    });
    await tracker.start();
    const statuses: ContinuousStatus[] = [];
    const ac = new AbortController();
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "live",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent"),
      signal: ac.signal,
      continuous: { tracker, intervalMs: 100, consistencyIntervalMs: 500, onStatus: (s) => statuses.push(s) },
    });
    sync.catch(() => {});
    try {
      await until("continuous mode", () => statuses.length > 0);
      for (let round = 0; round < 3; round++) {
        const fh = await open(disk, "r+");
        for (let i = 0; i < 8; i++) {
          const block = Math.floor(Math.random() * 256);
          await fh.write(randomBytes(4096), 0, 4096, block * 65536 + 8192);
        }
        await fh.write(Buffer.alloc(65536), 0, 65536, (10 + round) * 65536);
        await fh.close();
        const want = await sha256File(disk);
        await until(
          `round ${round} replicated`,
          async () => (await sha256File(await stagingImage(rep.dataDir, SERVER, "live"))) === want,
        );
      }
      await until("no backlog", () => statuses.at(-1)!.backloggedBytes === 0);
      const last = statuses.at(-1)!;
      assert.equal(last.dataReplicationState, "CONTINUOUS");
      assert.equal(last.lagMs, 0);
      assert.equal(last.tracker, "scan");
      assert.equal(last.error, undefined);
    } finally {
      ac.abort();
    }
    await assert.rejects(sync, (e: unknown) => e instanceof FerryError && e.code === "ABORTED");
    await tracker.stop();
  });
});
