import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { dataRuns, isZero, isZeroRange } from "./hashes.ts";

const naive = (b: Uint8Array, start = 0, end = b.length) => b.subarray(start, end).every((x) => x === 0);

/** A buffer of zeros (in ordinary or shared memory) with a few bytes set, and a range in it. */
const caseArb = fc
  .record({
    length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 200 * 1024 })),
    shared: fc.boolean(),
    marks: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), {
      maxLength: 3,
    }),
    cut: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
  })
  .map(({ length, shared, marks, cut }) => {
    const buf = shared ? Buffer.from(new SharedArrayBuffer(length)) : Buffer.alloc(length);
    for (const [at, v] of marks) if (length > 0) buf[Math.min(length - 1, Math.floor(at * length))] = v;
    const a = Math.floor(cut[0] * length);
    const b = Math.floor(cut[1] * length);
    return { buf, start: Math.min(a, b), end: Math.max(a, b) };
  });

test("isZero and isZeroRange agree with a byte-by-byte check at any length, offset and memory", () => {
  fc.assert(
    fc.property(caseArb, ({ buf, start, end }) => {
      assert.equal(isZero(buf), naive(buf));
      assert.equal(isZeroRange(buf, start, end), naive(buf, start, end));
      // A view at an odd offset: the bytes before and after it do not count.
      assert.equal(isZero(buf.subarray(start, end)), naive(buf, start, end));
    }),
    { numRuns: 300 },
  );
});

test("one non-zero byte is found wherever it is: first, last, across the 64 KiB pieces, in an odd tail", () => {
  for (const length of [1, 7, 4095, 65_535, 65_536, 65_537, 131_073, 1024 * 1024 + 3]) {
    const buf = Buffer.alloc(length);
    assert.equal(isZero(buf), true, `${length} zeros`);
    for (const at of new Set([
      0,
      length - 1,
      length >> 1,
      Math.min(length - 1, 65_536),
      Math.min(length - 1, 65_535),
    ])) {
      buf[at] = 0x80;
      assert.equal(isZero(buf), false, `byte ${at} of ${length}`);
      assert.equal(isZeroRange(buf, 0, at), true, `before byte ${at}`);
      assert.equal(isZeroRange(buf, at + 1, length), true, `after byte ${at}`);
      assert.equal(isZeroRange(buf, at, at + 1), false);
      buf[at] = 0;
    }
  }
  assert.equal(isZero(Buffer.alloc(0)), true);
  assert.equal(isZeroRange(Buffer.alloc(10, 1), 5, 5), true, "an empty range");
});

test("dataRuns: the non-zero blocks, merged when adjacent, the last block short", () => {
  const bs = 4096;
  const buf = Buffer.alloc(5 * bs + 100);
  buf[bs + 5] = 1;
  buf[2 * bs] = 1;
  buf[5 * bs + 99] = 1;
  assert.deepEqual(dataRuns(buf, bs), [
    [bs, 3 * bs],
    [5 * bs, 5 * bs + 100],
  ]);
});
