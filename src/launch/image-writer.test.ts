/**
 * The image writer and the conversion over it, on real files: O_DIRECT and
 * page-cache writes give the same bytes, zero blocks stay holes, a disk size
 * that is not a multiple of 4 KiB ends right, lent buffers may be reused as
 * soon as `put` returns, a damaged chunk fails the conversion with every
 * write settled, and (with root) a full filesystem fails the launch's writes
 * instead of hanging or losing the error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { dataRuns } from "../wire/index.ts";
import { createImageWriter } from "./image-writer.ts";
import { materializeDisk } from "./materialize.ts";
import type { SnapshotExtent, SnapshotReader } from "../model/staging.ts";
import { FerryError } from "../lib/errors.ts";
import { attachLoop, createImage, createScratch, haveRoot, mkfs, mount } from "../../test/support/loop.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

/** 10 MiB + 1.5 KiB: random data, text, whole zero blocks, a zero block inside a chunk, data in the last partial block. */
function disk(): Buffer {
  const buf = Buffer.alloc(10 * MiB + 1536);
  randomBytes(3 * MiB).copy(buf, 0);
  Buffer.from("ferry image ".repeat(100_000)).copy(buf, 4 * MiB + 5 * BLOCK);
  randomBytes(700).copy(buf, buf.length - 700);
  buf.fill(0, 2 * MiB, 2 * MiB + BLOCK); // one zero block inside data
  return buf;
}

/** A snapshot reader over `data` that lends a copy and scribbles on it once `use` settles. */
function memoryReader(data: Buffer, damagedAt?: number): SnapshotReader {
  const check = (offset: number, length: number) => {
    if (damagedAt !== undefined && offset <= damagedAt && damagedAt < offset + length)
      throw new FerryError("SNAPSHOT_DAMAGED", `damaged at offset ${damagedAt}`);
  };
  return {
    info: {
      snapshotId: "snap-test",
      sourceServerId: "s-0123456789abcdef0",
      diskId: "vda",
      createdAt: new Date(0).toISOString(),
      barrierId: 1,
      diskSize: data.length,
      logicalBlockSize: 512,
      blockSize: BLOCK,
      reason: "requested",
    },
    async read(offset, length) {
      check(offset, length);
      return Buffer.from(data.subarray(offset, offset + length));
    },
    async readWith(offset, length, use) {
      await new Promise((r) => setImmediate(r));
      check(offset, length);
      const scratch = Buffer.from(data.subarray(offset, offset + length));
      try {
        return await use(scratch.subarray(0, length));
      } finally {
        scratch.fill(0xee); // the writer must not keep the lent bytes
      }
    },
    async *extents(): AsyncIterable<SnapshotExtent> {
      // 8–9 MiB is a known-zero extent; the rest is data (with zero blocks inside).
      yield { offset: 0, length: 8 * MiB, zero: false };
      yield { offset: 8 * MiB, length: MiB, zero: true };
      yield { offset: 9 * MiB, length: data.length - 9 * MiB, zero: false };
    },
    async close() {},
  };
}

test("dataRuns: runs of blocks that are not all zeros, the last block short", () => {
  const b = Buffer.alloc(5 * 4096 + 100);
  b[1] = 1;
  b[2 * 4096] = 1;
  b[3 * 4096 + 5] = 1;
  b[5 * 4096 + 99] = 1;
  assert.deepEqual(dataRuns(b, 4096), [
    [0, 4096],
    [2 * 4096, 4 * 4096],
    [5 * 4096, 5 * 4096 + 100],
  ]);
  assert.deepEqual(dataRuns(Buffer.alloc(3 * 4096), 4096), []);
});

for (const direct of [true, false]) {
  test(`conversion ${direct ? "with O_DIRECT" : "through the page cache"}: identical bytes, zero blocks as holes, an unaligned tail`, async () => {
    const s = await createScratch("ferry-image-writer-");
    try {
      const data = disk();
      const path = join(s.dir, "vda.raw");
      const r = await materializeDisk(memoryReader(data), path, undefined, {
        chunkBytes: 4 * MiB,
        readsInFlight: 3,
        image: { direct, writesInFlight: 2 },
      });
      assert.equal(r.direct, direct, "O_DIRECT where asked (ext4 and tmpfs both take it here)");
      const got = await readFile(path);
      assert.equal(got.length, data.length);
      assert.ok(got.equals(data), "the image differs from the snapshot");
      const nonZero = dataRuns(data, BLOCK).reduce((n, [a, b]) => n + b - a, 0);
      assert.equal(r.dataBytes, nonZero);
      const st = await stat(path);
      assert.ok(st.blocks * 512 < data.length - 4 * MiB, `allocated ${st.blocks * 512} of ${data.length}`);
    } finally {
      await s.cleanup();
    }
  });
}

test("a disk that ends in zeros: the image has the disk's size and its zero tail stays a hole", async () => {
  const s = await createScratch("ferry-image-writer-");
  try {
    const data = Buffer.alloc(6 * MiB);
    randomBytes(2 * MiB).copy(data, MiB);
    const path = join(s.dir, "vda.raw");
    const w = await createImageWriter(path, data.length, { blockSize: BLOCK, bufferBytes: MiB });
    try {
      for (let off = 0; off < data.length; off += MiB) await w.put(off, data.subarray(off, off + MiB));
      await w.finish();
    } finally {
      await w.close();
    }
    const got = await readFile(path);
    assert.equal(got.length, data.length, "sized to the disk, not to its last data");
    assert.ok(got.equals(data));
    assert.equal(w.dataBytes, 2 * MiB);
    assert.ok((await stat(path)).blocks * 512 <= 2 * MiB + 64 * KiB, "the zero head and tail are holes");
  } finally {
    await s.cleanup();
  }
});

test("a damaged chunk fails the conversion with its error once every write has settled", async () => {
  const s = await createScratch("ferry-image-writer-");
  try {
    const data = disk();
    await assert.rejects(
      materializeDisk(memoryReader(data, 6 * MiB + 3 * BLOCK), join(s.dir, "vda.raw"), undefined, {
        chunkBytes: MiB,
        readsInFlight: 4,
      }),
      (e: FerryError) => e.code === "SNAPSHOT_DAMAGED" && /offset 6488064/.test(e.message),
    );
  } finally {
    await s.cleanup();
  }
});

test(
  "a full filesystem fails the image writes (O_DIRECT), and the writer still closes",
  { skip: !haveRoot() && "needs root (loop mount)" },
  async () => {
    const s = await createScratch("ferry-image-writer-");
    try {
      const dev = await attachLoop(s, await createImage(s, "small.img", 16 * MiB));
      await mkfs(dev);
      const mnt = await mount(s, dev);
      const w = await createImageWriter(join(mnt, "vda.raw"), 64 * MiB, { blockSize: BLOCK });
      assert.equal(w.direct, true);
      const chunk = randomBytes(4 * MiB);
      const failed = (async () => {
        for (let off = 0; off < 64 * MiB; off += chunk.length) await w.put(off, chunk);
        await w.finish();
      })();
      await assert.rejects(failed, (e: NodeJS.ErrnoException) => e.code === "ENOSPC");
      await w.close();
    } finally {
      await s.cleanup();
    }
  },
);
