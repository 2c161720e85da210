import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { replicateDisk } from "./sync.ts";
import { createScratch, type Scratch } from "../../test/support/loop.ts";
import {
  sha256File,
  stagingImage,
  startTestReplicator,
  writeMixedImage,
  type TestReplicator,
} from "../../test/support/data-plane.ts";

const MiB = 1024 * 1024;
const SERVER = "s-0123456789abcdefa";

describe("the block pipeline on worker threads", () => {
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

  // Raw payloads leave straight from the read buffers: a small window and many
  // more chunks than buffers make every buffer be reused while frames from it
  // may still be queued or in the socket.
  for (const [name, workers, compression] of [
    ["2 workers, raw payloads sent in place", 2, "none"],
    ["1 worker, zstd", 1, "zstd"],
    ["the event loop", 0, "auto"],
  ] as const) {
    test(`${name}: identical, zeros never sent, frames in disk order`, async () => {
      const disk = join(scratch.dir, `${workers}-${compression}.img`);
      const size = 48 * MiB + 4096 * 3;
      await writeMixedImage(disk, size, workers + 7);
      const diskId = `w${workers}${compression}`;
      const r = await replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId,
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "state"),
        workers,
        compression,
        windowBytes: 2 * MiB,
      });
      assert.equal(await sha256File(await stagingImage(rep.dataDir, SERVER, diskId)), await sha256File(disk));
      assert.equal(r.dataBytes + r.zeroBytes, size);
      assert.ok(r.zeroBytes > 0);
      if (compression === "none") assert.equal(r.compressedRawBytes, 0);
      else assert.ok(r.compressedBytes < r.compressedRawBytes);
      assert.equal(r.reconnects, 0);
    });
  }
});
