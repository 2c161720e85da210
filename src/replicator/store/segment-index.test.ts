import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HASH_BYTES } from "../../wire/index.ts";
import { SegmentIndexBuilder } from "./segment-index.ts";
import { encodeTrailer, FOOTER_BYTES, parseFooter, parseIndex, type SegmentRecord } from "./segment.ts";

const record = fc
  .record({
    firstBlock: fc.integer({ min: 0, max: 2 ** 40 }),
    // Up to 4096 hashes (128 KiB): entries larger than the first chunk, and chunks that fill up.
    count: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4096 })),
    zero: fc.boolean(),
    dataOffset: fc.integer({ min: 0, max: 2 ** 40 }),
    dataLength: fc.integer({ min: 0, max: 2 ** 31 }),
    seed: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ seed, ...r }): SegmentRecord => {
    const hashes = r.zero ? Buffer.alloc(0) : Buffer.alloc(r.count * HASH_BYTES);
    for (let i = 0; i < hashes.length; i++) hashes[i] = (seed + i * 7) & 0xff;
    return { ...r, hashes };
  });

test("property: the index built record by record is byte for byte the trailer encodeTrailer writes, and parses back", () => {
  fc.assert(
    fc.property(
      fc.array(record, { maxLength: 300 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      (records, recordsLength) => {
        const b = new SegmentIndexBuilder();
        for (const r of records) b.add(r);
        const built = Buffer.concat(b.trailer(recordsLength, 4096));
        assert.deepEqual(built, encodeTrailer(records, recordsLength, 4096));
        assert.equal(b.recordCount, records.length);
        assert.equal(b.length, built.length - FOOTER_BYTES);
        const footer = parseFooter(built.subarray(built.length - FOOTER_BYTES), "test");
        const parsed = parseIndex(built.subarray(0, footer.indexLength), footer, "test");
        assert.deepEqual(
          parsed.map((r) => ({ ...r, hashes: Buffer.from(r.hashes) })),
          records.map((r) => ({ ...r, hashes: r.zero ? Buffer.alloc(0) : r.hashes })),
        );
      },
    ),
    { numRuns: 60 },
  );
});

test("a one-block record costs 56 bytes of index, and the builder keeps no view of the hashes it was given", () => {
  const b = new SegmentIndexBuilder();
  const hashes = Buffer.alloc(HASH_BYTES, 7);
  for (let i = 0; i < 50_000; i++) {
    b.add({ firstBlock: i, count: 1, zero: false, dataOffset: i * 4152, dataLength: 4096, hashes });
  }
  assert.equal(b.length, 50_000 * (24 + HASH_BYTES));
  hashes.fill(9); // the frame's memory is reused: the index must not change
  const parts = b.trailer(50_000 * 4152, 4096);
  const index = Buffer.concat(parts.slice(0, -1));
  assert.equal(index.length, b.length);
  // Chunks double from 64 KiB to 1 MiB (5 of them), then 1 MiB each; then the footer.
  assert.ok(parts.length <= 5 + Math.ceil(b.length / (1024 * 1024)) + 1, `${parts.length} chunks`);
  const footer = parseFooter(parts.at(-1)!, "test");
  const parsed = parseIndex(index, footer, "test");
  assert.ok(parsed.every((r) => r.hashes.every((x) => x === 7)));
});
