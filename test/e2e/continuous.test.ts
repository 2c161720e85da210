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

  test("NOT_CONVERGING: the source writes faster than the throttle allows; reported with both rates; recovers when the writes stop", async () => {
    const disk = join(scratch.dir, "busy.img");
    await writeFile(disk, randomBytes(16 * MiB));
    const tracker = new ScanTracker({
      devicePath: disk,
      stateDir: join(scratch.dir, "busy.tracker"),
      intervalMs: 200,
    });
    await tracker.start();
    const statuses: ContinuousStatus[] = [];
    const ac = new AbortController();
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "busy",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent"),
      bandwidthMbps: 8, // 1 MB/s
      compression: "none",
      signal: ac.signal,
      continuous: {
        tracker,
        intervalMs: 100,
        consistencyIntervalMs: 60_000,
        convergeWindowMs: 3000,
        onStatus: (s) => statuses.push(s),
      },
    });
    sync.catch(() => {});
    let writing = true;
    // Random 4 KiB writes all over a 4 MiB region: each dirties its 64 KiB block, ~10 MB/s of dirty blocks.
    const writer = (async () => {
      await until("continuous mode", () => statuses.length > 0, 60000);
      const fh = await open(disk, "r+");
      try {
        while (writing) {
          for (let i = 0; i < 16; i++) {
            await fh.write(randomBytes(4096), 0, 4096, Math.floor(Math.random() * 1024) * 4096);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await fh.close();
      }
    })();
    try {
      await until("NOT_CONVERGING", () => statuses.at(-1)?.error?.error === "NOT_CONVERGING", 30000);
      const st = statuses.at(-1)!;
      assert.ok(
        st.writeBytesPerSecond > st.sendBytesPerSecond,
        `writes ${st.writeBytesPerSecond} B/s > sends ${st.sendBytesPerSecond} B/s`,
      );
      assert.ok(
        st.sendBytesPerSecond > 0.5e6 && st.sendBytesPerSecond < 1.3e6,
        `sends at the 1 MB/s throttle: ${st.sendBytesPerSecond}`,
      );
      assert.ok(st.backloggedBytes > 0 && st.lagMs >= 3000);
      const mb = (b: number) => (b / 1e6).toFixed(1);
      assert.ok(
        st.error!.rawError.includes(
          `writes ${mb(st.writeBytesPerSecond)} MB/s but only ${mb(st.sendBytesPerSecond)} MB/s`,
        ),
        st.error!.rawError,
      );
      // The writes stop: the backlog drains at the throttle, the error clears, the replica catches up.
      writing = false;
      await writer;
      const want = await sha256File(disk);
      await until(
        "caught up",
        () => statuses.at(-1)!.backloggedBytes === 0 && statuses.at(-1)!.error === undefined,
        60000,
      );
      const last = statuses.at(-1)!;
      assert.equal(last.dataReplicationState, "CONTINUOUS");
      assert.equal(last.lagMs, 0);
      await until(
        "replica identical",
        async () => (await sha256File(await stagingImage(rep.dataDir, SERVER, "busy"))) === want,
        30000,
      );
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      ac.abort();
      await sync.catch(() => undefined);
      await tracker.stop();
    }
  });
});
