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
const SERVER = "s-0123456789abcdefg";

// The replicator's payload checks on a worker thread ("auto" chooses none on 2 cores, so force one):
// raw payloads read in place from the frame pool's shared memory, zstd output moved back, and the
// pooled memory reused frame after frame.
describe("data path with payload checks on worker threads", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch();
    rep = await startTestReplicator(join(scratch.dir, "replicator"), { verifyWorkers: 1 });
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  for (const compression of ["none", "zstd"] as const) {
    test(`a mixed disk arrives byte-identical (compression ${compression})`, async () => {
      const disk = join(scratch.dir, `mixed-${compression}.img`);
      await writeMixedImage(disk, 96 * MiB);
      const r = await replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: `disk-${compression}`,
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "agent-state"),
        compression,
      });
      assert.equal(r.bytes, 96 * MiB);
      assert.equal(r.dataBytes, 48 * MiB);
      if (compression === "zstd") assert.ok(r.compressedBytes < r.compressedRawBytes);
      else assert.equal(r.compressedRawBytes, 0);
      assert.equal(
        await sha256File(await stagingImage(rep.dataDir, SERVER, `disk-${compression}`)),
        await sha256File(disk),
      );
    });
  }
});
