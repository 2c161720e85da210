/**
 * Many small DATA frames (one 4 KiB hash block each, random offsets), as
 * continuous replication sends them: the replicator writes several in one
 * write to the open segment, still acknowledges the last one as soon as the
 * stream pauses, and the replica holds every byte.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Compression, blockHashes, type HelloFrame } from "../../src/wire/index.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import { stagingImage, startTestReplicator, type TestReplicator } from "../support/data-plane.ts";
import { hello, rawConnect } from "../support/raw-client.ts";

const SERVER = "s-smallframes000000";
const BLOCK = 4096;
const DISK_SIZE = 16 * 1024 * 1024;
const FRAMES = 600;

describe("data path: many small frames", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch();
    // No flush by bytes or by time: only the end of the burst can trigger the acknowledgement.
    rep = await startTestReplicator(join(scratch.dir, "replicator"), {
      flushBytes: 1024 * 1024 * 1024,
      flushMs: 600_000,
    });
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("a burst of 4 KiB frames is acknowledged up to its last frame, and the replica is identical", async () => {
    const s = await rawConnect(rep.endpoint);
    s.conn.send({ ...(hello(rep.endpoint, SERVER, "vdb", DISK_SIZE) as HelloFrame), hashBlockSize: BLOCK });
    await s.next("WELCOME");
    // Distinct blocks at random positions, each written once (some twice: the later one wins).
    const want = new Map<number, Buffer>();
    for (let seq = 1; seq <= FRAMES; seq++) {
      const block = Math.floor(Math.random() * (DISK_SIZE / BLOCK));
      const data = randomBytes(BLOCK);
      want.set(block, data);
      s.conn.send({
        type: "DATA",
        seq: BigInt(seq),
        offset: BigInt(block * BLOCK),
        length: BLOCK,
        compression: Compression.NONE,
        hashes: blockHashes(data, BLOCK),
        payload: data,
      });
    }
    const deadline = Date.now() + 10_000;
    const acked = () => Math.max(0, ...s.frames.map((f) => (f.type === "ACK" ? Number(f.seq) : 0)));
    while (acked() < FRAMES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const errors = s.frames.filter((f) => f.type === "ERROR");
    assert.deepEqual(errors, []);
    assert.equal(acked(), FRAMES, "the last frame of the burst is acknowledged");
    s.conn.close();
    await s.closed;

    const image = await stagingImage(rep.dataDir, SERVER, "vdb");
    const fh = await open(image, "r");
    try {
      for (const [block, data] of want) {
        const got = Buffer.alloc(BLOCK);
        await fh.read(got, 0, BLOCK, block * BLOCK);
        assert.ok(got.equals(data), `block ${block} differs`);
      }
    } finally {
      await fh.close();
    }
  });
});
