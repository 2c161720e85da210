import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { planReads, resolveExtentSenderOptions } from "./continuous-send.ts";

const KiB = 1024;

/** Every byte that must be sent: the extents widened to hash blocks and clipped to the disk. */
function wanted(extents: { offset: number; length: number }[], hbs: number, size: number): Set<number> {
  const blocks = new Set<number>();
  for (const e of extents) {
    if (e.length <= 0) continue;
    for (let b = Math.floor(e.offset / hbs); b * hbs < Math.min(e.offset + e.length, size); b++)
      blocks.add(b);
  }
  return blocks;
}

test("planReads: nearby extents share a read, only dirty parts are sent, spans are bounded", () => {
  const o = resolveExtentSenderOptions({ spanBytes: 256 * KiB, readGapBytes: 16 * KiB });
  const plan = planReads(
    [
      { offset: 0, length: 4 * KiB },
      { offset: 4 * KiB, length: 4 * KiB }, // touching: one part
      { offset: 16 * KiB, length: 4 * KiB }, // 8 KiB away: same read, its own part
      { offset: 100 * KiB, length: 1 }, // far: a new read, widened to a block
      { offset: 1000 * KiB, length: 600 * KiB }, // longer than a span: cut
    ],
    4 * KiB,
    1536 * KiB,
    o,
  );
  assert.deepEqual(plan, [
    {
      offset: 0,
      length: 20 * KiB,
      parts: [
        { offset: 0, length: 8 * KiB },
        { offset: 16 * KiB, length: 4 * KiB },
      ],
    },
    { offset: 100 * KiB, length: 4 * KiB, parts: [{ offset: 100 * KiB, length: 4 * KiB }] },
    { offset: 1000 * KiB, length: 256 * KiB, parts: [{ offset: 1000 * KiB, length: 256 * KiB }] },
    { offset: 1256 * KiB, length: 256 * KiB, parts: [{ offset: 1256 * KiB, length: 256 * KiB }] },
    // Clipped at the disk's end (1536 KiB).
    { offset: 1512 * KiB, length: 24 * KiB, parts: [{ offset: 1512 * KiB, length: 24 * KiB }] },
  ]);
});

test("planReads: property — every dirty hash block is sent exactly once, nothing else, reads bounded and ordered", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4 * KiB, 64 * KiB),
      fc.integer({ min: 1, max: 400 }),
      fc.array(fc.record({ offset: fc.nat(3000), length: fc.integer({ min: 0, max: 300 }) }), {
        maxLength: 60,
      }),
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 0, max: 8 }),
      (hbs, sizeBlocks, raw, spanBlocks, gapBlocks) => {
        const unit = hbs / 16; // extents need not be block-aligned
        const size = sizeBlocks * hbs - (sizeBlocks % 3) * 512; // a short last block sometimes
        const extents = raw.map((e) => ({ offset: e.offset * unit, length: e.length * unit }));
        const o = {
          readsInFlight: 4,
          spanBytes: spanBlocks * hbs,
          readGapBytes: gapBlocks * hbs,
          queueBytes: 1024,
        };
        const plan = planReads(extents, hbs, size, o);
        const sent = new Map<number, number>();
        let prevEnd = -1;
        for (const span of plan) {
          assert.ok(span.offset >= prevEnd, "reads in offset order, disjoint");
          assert.equal(span.offset % hbs, 0, "reads start on hash blocks");
          assert.ok(span.length <= o.spanBytes, "a read is at most a span");
          assert.ok(span.offset + span.length <= size, "inside the disk");
          let partEnd = span.offset;
          for (const p of span.parts) {
            assert.ok(p.offset >= partEnd, "parts ordered and disjoint");
            assert.ok(p.offset + p.length <= span.offset + span.length, "part inside its read");
            partEnd = p.offset + p.length;
            for (let b = p.offset / hbs; b * hbs < p.offset + p.length; b++)
              sent.set(b, (sent.get(b) ?? 0) + 1);
          }
          assert.equal(span.parts[0]!.offset, span.offset, "a read starts with a part");
          assert.equal(partEnd, span.offset + span.length, "and ends with one");
          prevEnd = span.offset + span.length;
        }
        const want = wanted(extents, hbs, size);
        assert.deepEqual(new Set(sent.keys()), want);
        assert.ok(
          [...sent.values()].every((n) => n === 1),
          "no block sent twice",
        );
      },
    ),
    { numRuns: 300 },
  );
});
