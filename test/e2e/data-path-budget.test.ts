/**
 * Several agents at once against a replicator whose shared pending budget is
 * far smaller than one agent's window: every session pauses and resumes its
 * socket again and again, and every disk still arrives byte-identical.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { replicateDisk } from "../../src/agent/sync.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import {
  sha256File,
  stagingImage,
  startTestReplicator,
  writeMixedImage,
  type TestReplicator,
} from "../support/data-plane.ts";

const MiB = 1024 * 1024;
const SERVERS = ["s-0000000000000000a", "s-0000000000000000b", "s-0000000000000000c"];

describe("data path: a shared pending budget among sessions", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch();
    rep = await startTestReplicator(join(scratch.dir, "replicator"), {
      pendingBudgetBytes: 3 * MiB,
      minPendingBytes: 1 * MiB,
    });
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("three agents at once, 1 MiB of pending data each: all disks identical", async () => {
    const disks = await Promise.all(
      SERVERS.map(async (_, i) => {
        const disk = join(scratch.dir, `disk${i}.img`);
        await writeMixedImage(disk, 16 * MiB + i * 64 * 1024);
        return disk;
      }),
    );
    const results = await Promise.all(
      SERVERS.map((s, i) =>
        replicateDisk({
          sourcePath: disks[i]!,
          sourceServerId: s,
          diskId: "disk0",
          endpoint: rep.endpoint,
          stateDir: join(scratch.dir, `agent-state-${i}`),
          compression: "none",
        }),
      ),
    );
    for (const [i, s] of SERVERS.entries()) {
      assert.equal(results[i]!.bytes, 16 * MiB + i * 64 * 1024);
      assert.equal(
        await sha256File(await stagingImage(rep.dataDir, s, "disk0")),
        await sha256File(disks[i]!),
      );
    }
  });
});
