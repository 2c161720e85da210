import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DirtyBitmap } from "./bitmap.ts";
import type { DirtyExtent } from "./types.ts";

/** The blocks a list of extents covers, checking that they are aligned, ordered and coalesced. */
function blocksOf(extents: DirtyExtent[], bs: number, size: number): Set<number> {
  const out = new Set<number>();
  let prevEnd = -1;
  for (const x of extents) {
    assert.equal(x.offset % bs, 0, "extent starts on a block");
    assert.ok(x.length > 0);
    assert.ok(
      x.offset + x.length === size || x.length % bs === 0,
      "extent ends on a block or at the disk's end",
    );
    assert.ok(x.offset > prevEnd, "extents are ordered and not adjacent (coalesced)");
    prevEnd = x.offset + x.length;
    for (let b = x.offset / bs; b * bs < x.offset + x.length; b++) out.add(b);
  }
  return out;
}

test("property: drained extents are exactly the blocks touched, coalesced and in order", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(512, 4096, 65536),
      fc.integer({ min: 1, max: 5_000_000 }),
      fc.array(fc.tuple(fc.integer({ min: -10_000, max: 5_100_000 }), fc.integer({ min: 0, max: 300_000 })), {
        maxLength: 40,
      }),
      (bs, size, writes) => {
        const bitmap = new DirtyBitmap(size, bs);
        const model = new Set<number>();
        for (const [offset, length] of writes) {
          bitmap.markRange(offset, length);
          const start = Math.max(0, offset);
          const end = Math.min(size, offset + length);
          if (length > 0 && end > start) {
            for (let b = Math.floor(start / bs); b <= Math.floor((end - 1) / bs); b++) model.add(b);
          }
        }
        assert.equal(bitmap.dirtyBlocks, model.size);
        const copy = new DirtyBitmap(size, bs, bitmap.toBytes());
        assert.deepEqual(copy.extents(), bitmap.extents(), "persisted bits give the same extents");
        const extents = bitmap.drain();
        assert.deepEqual(
          [...blocksOf(extents, bs, size)].sort((a, b) => a - b),
          [...model].sort((a, b) => a - b),
        );
        assert.equal(
          extents.reduce((n, x) => n + x.length, 0),
          copy.dirtyBytes,
        );
        assert.equal(bitmap.dirtyBlocks, 0);
        assert.deepEqual(bitmap.drain(), []);
      },
    ),
  );
});

test("the last block of a disk that is not a multiple of the block size is short", () => {
  const bitmap = new DirtyBitmap(65536 * 3 + 4096, 65536);
  bitmap.markRange(65536 * 3, 1);
  assert.deepEqual(bitmap.drain(), [{ offset: 65536 * 3, length: 4096 }]);
  bitmap.markAll();
  assert.deepEqual(bitmap.drain(), [{ offset: 0, length: 65536 * 3 + 4096 }]);
});

test("bits beyond the last block in a saved bitmap are ignored", () => {
  const bytes = new Uint8Array(DirtyBitmap.byteLength(65536 * 5, 65536)).fill(0xff);
  const bitmap = new DirtyBitmap(65536 * 5, 65536, bytes);
  assert.equal(bitmap.dirtyBlocks, 5);
  assert.deepEqual(bitmap.extents(), [{ offset: 0, length: 65536 * 5 }]);
});
