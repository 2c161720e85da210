import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { FerryError } from "../../lib/errors.ts";
import { createBlockProcessor, resolveWorkerCount, type ChunkResult } from "./block-pool.ts";
import { processChunk } from "./block-task.ts";

const KiB = 1024;

function chunk(i: number, hbs: number): Buffer {
  // Zero, text and random blocks, different in each chunk.
  const text = Buffer.from(`chunk ${i} `.repeat(hbs));
  return Buffer.concat([Buffer.alloc(hbs), text.subarray(0, hbs), randomBytes(hbs), Buffer.alloc(hbs)]);
}

function same(a: ChunkResult, b: ChunkResult): void {
  assert.deepEqual([...a.zero], [...b.zero]);
  assert.equal(a.runs.length, b.runs.length);
  a.runs.forEach((r, i) => {
    const s = b.runs[i]!;
    assert.equal(r.at, s.at);
    assert.equal(r.compression, s.compression);
    assert.deepEqual(Buffer.from(r.hashes), Buffer.from(s.hashes));
    assert.deepEqual(Buffer.from(r.payload), Buffer.from(s.payload));
  });
}

test("workers read shared chunks in place and answer as the event loop would, in order", async () => {
  const hbs = 16 * KiB;
  const blocks = createBlockProcessor(2);
  try {
    const slab = Buffer.from(new SharedArrayBuffer(8 * 4 * hbs));
    const inputs = Array.from({ length: 8 }, (_, i) => chunk(i, hbs));
    inputs.forEach((c, i) => c.copy(slab, i * 4 * hbs));
    const pending = inputs.map((_, i) =>
      blocks.process({
        data: slab.subarray(i * 4 * hbs, (i + 1) * 4 * hbs),
        hashBlockSize: hbs,
        compress: true,
      }),
    );
    for (let i = 0; i < inputs.length; i++) {
      const got = await pending[i]!;
      same(got, processChunk({ data: inputs[i]!, hashBlockSize: hbs, compress: true }));
    }
    // The results own their bytes: the shared memory is read into again afterwards.
    const first = await pending[0]!;
    const payload = Buffer.from(first.runs[0]!.payload);
    slab.fill(0x77);
    assert.deepEqual(Buffer.from(first.runs[0]!.payload), payload);
  } finally {
    await blocks.close();
  }
});

test("a chunk of ordinary memory is copied to the worker, not its whole slab", async () => {
  const hbs = 4 * KiB;
  const blocks = createBlockProcessor(1);
  try {
    const slab = Buffer.alloc(64 * hbs);
    const c = chunk(3, hbs);
    c.copy(slab, 8 * hbs);
    const view = slab.subarray(8 * hbs, 8 * hbs + c.length);
    const got = await blocks.process({ data: view, hashBlockSize: hbs, compress: false });
    same(got, processChunk({ data: c, hashBlockSize: hbs, compress: false }));
    assert.equal(slab.buffer.byteLength > 0, true, "the caller's slab is not detached");
    assert.deepEqual(slab.subarray(8 * hbs, 8 * hbs + c.length), c);
  } finally {
    await blocks.close();
  }
});

test("without workers the same work runs on the event loop", async () => {
  const blocks = createBlockProcessor(0);
  const c = chunk(1, 4 * KiB);
  same(
    await blocks.process({ data: c, hashBlockSize: 4 * KiB, compress: true }),
    processChunk({ data: c, hashBlockSize: 4 * KiB, compress: true }),
  );
  await assert.rejects(blocks.process({ data: c, hashBlockSize: 0, compress: true }));
  await blocks.close();
});

test("worker counts: auto is 1 to 4, bad values are a user error", () => {
  const auto = resolveWorkerCount("auto");
  assert.ok(auto >= 1 && auto <= 4);
  assert.equal(resolveWorkerCount(0), 0);
  assert.equal(resolveWorkerCount(3), 3);
  for (const bad of [-1, 1.5, Number.NaN, 65]) {
    assert.throws(
      () => resolveWorkerCount(bad),
      (e: unknown) => e instanceof FerryError && e.code === "BAD_WORKER_COUNT",
    );
  }
});
