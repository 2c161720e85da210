import { test } from "node:test";
import assert from "node:assert/strict";
import { FramePool } from "./frame-pool.ts";

const KiB = 1024;

test("a large frame's memory is reused once given back; small frames are not pooled", () => {
  const pool = new FramePool({ minBytes: 64 * KiB, classBytes: 64 * KiB });
  const a = pool.allocate(1024 * KiB + 100);
  assert.equal(a.length, 1024 * KiB + 100);
  assert.equal(a.buffer.byteLength, 1088 * KiB); // rounded up to the size class
  pool.release(a.subarray(10, 20)); // any view of it gives it back
  const b = pool.allocate(1024 * KiB + 7);
  assert.equal(b.buffer, a.buffer);
  assert.equal(pool.misses, 1);

  const small = pool.allocate(100);
  assert.equal(small.length, 100);
  pool.release(small);
  assert.equal(pool.idleBytes, 0);
});

test("a buffer given back twice, or one the pool never lent, is ignored", () => {
  const pool = new FramePool();
  const a = pool.allocate(200 * KiB);
  pool.release(a);
  pool.release(a);
  assert.equal(pool.idleBytes, 256 * KiB);
  pool.release(Buffer.alloc(200 * KiB));
  assert.equal(pool.idleBytes, 256 * KiB);
  // Lent again, then two allocations of the class: only one can be the reused one.
  const b = pool.allocate(200 * KiB);
  const c = pool.allocate(200 * KiB);
  assert.equal(b.buffer, a.buffer);
  assert.notEqual(c.buffer, a.buffer);
});

test("the free memory kept is bounded; the rest is left to the garbage collector", () => {
  const pool = new FramePool({ maxFreeBytes: 1024 * KiB });
  const lent = Array.from({ length: 8 }, () => pool.allocate(256 * KiB));
  for (const b of lent) pool.release(b);
  assert.equal(pool.idleBytes, 1024 * KiB);
});

test("memory is shared (for worker threads) only when asked; either kind is reused and copies in", () => {
  for (const shared of [false, true]) {
    const pool = new FramePool({ shared });
    const a = pool.allocate(300 * KiB);
    assert.equal(a.buffer instanceof SharedArrayBuffer, shared);
    Buffer.alloc(300 * KiB, 7).copy(a);
    assert.equal(a[300 * KiB - 1], 7);
    pool.release(a);
    assert.equal(pool.allocate(300 * KiB).buffer, a.buffer);
  }
});
