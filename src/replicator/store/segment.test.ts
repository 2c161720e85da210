import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FerryError } from "../../lib/errors.ts";
import { HASH_BYTES } from "../../wire/index.ts";
import {
  RecordHeaders,
  encodeRecordHeader,
  scanRecords,
  scanSegment,
  type SegmentRecord,
} from "./segment.ts";

/** A segment's records as written: header, hashes, data. */
function segmentOf(runs: { firstBlock: number; count: number; zero: boolean; dataLength: number }[]): Buffer {
  const parts: Buffer[] = [];
  for (const [n, r] of runs.entries()) {
    const hashes = r.zero ? Buffer.alloc(0) : Buffer.alloc(r.count * HASH_BYTES, n);
    const data = r.zero ? Buffer.alloc(0) : Buffer.alloc(r.dataLength, n + 1);
    parts.push(encodeRecordHeader({ ...r, dataLength: data.length, hashes }), hashes, data);
  }
  return Buffer.concat(parts);
}

const runs = fc.array(
  fc.record({
    firstBlock: fc.integer({ min: 0, max: 1_000_000 }),
    count: fc.integer({ min: 1, max: 64 }),
    zero: fc.boolean(),
    dataLength: fc.integer({ min: 1, max: 20_000 }),
  }),
  { maxLength: 40 },
);

async function scanned(seg: Buffer, window: number, length = seg.length): Promise<SegmentRecord[]> {
  const out: SegmentRecord[] = [];
  const read = async (r: { offset: number; length: number }) => seg.subarray(r.offset, r.offset + r.length);
  await scanSegment(read, length, "test", (r) => out.push({ ...r, hashes: Buffer.from(r.hashes) }), window);
  return out;
}

test("property: scanning a window at a time finds the records a whole scan finds, whatever the window", async () => {
  await fc.assert(
    fc.asyncProperty(runs, fc.integer({ min: 64 * HASH_BYTES + 32, max: 100_000 }), async (rs, window) => {
      const seg = segmentOf(rs);
      const whole = scanRecords(seg, "test").map((r) => ({ ...r, hashes: Buffer.from(r.hashes) }));
      assert.equal(whole.length, rs.length);
      assert.deepEqual(await scanned(seg, window), whole);
    }),
    { numRuns: 100 },
  );
});

test("a windowed scan reads only the windows that hold headers and hashes", async () => {
  // Two records of 1 MiB of data each: with a 4 KiB window, two reads, not 512.
  const seg = segmentOf([
    { firstBlock: 0, count: 16, zero: false, dataLength: 1 << 20 },
    { firstBlock: 16, count: 16, zero: false, dataLength: 1 << 20 },
  ]);
  let reads = 0;
  const out: number[] = [];
  await scanSegment(
    async (r) => {
      reads++;
      return seg.subarray(r.offset, r.offset + r.length);
    },
    seg.length,
    "test",
    (r) => out.push(r.firstBlock),
    4096,
  );
  assert.deepEqual(out, [0, 16]);
  assert.equal(reads, 2);
});

test("a record cut short, a damaged header or hashes larger than a window are SEGMENT_DAMAGED", async () => {
  const seg = segmentOf([
    { firstBlock: 0, count: 4, zero: false, dataLength: 16_384 },
    { firstBlock: 9, count: 2, zero: false, dataLength: 8192 },
  ]);
  const damaged = (err: unknown) => err instanceof FerryError && err.code === "SEGMENT_DAMAGED";
  await assert.rejects(scanned(seg, 8192, seg.length - 1), damaged);
  await assert.rejects(scanned(seg.subarray(0, seg.length - 1), 8192), damaged);
  const flipped = Buffer.from(seg);
  flipped.writeUInt8(flipped.readUInt8(32 + 5) ^ 1, 32 + 5); // a hash of the first record
  await assert.rejects(scanned(flipped, 8192), damaged);
  await assert.rejects(scanned(seg, 64), damaged);
});

test("record headers cut from a slab are distinct and encode exactly as fresh ones", () => {
  const headers = new RecordHeaders();
  const taken: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const r = {
      firstBlock: i * 3,
      count: 1 + (i % 5),
      zero: i % 7 === 0,
      dataLength: 4096,
      hashes: Buffer.alloc(0),
    };
    r.hashes = r.zero ? Buffer.alloc(0) : Buffer.alloc(r.count * HASH_BYTES, i & 0xff);
    const h = encodeRecordHeader(r, headers.take());
    assert.deepEqual(h, encodeRecordHeader(r));
    taken.push(h);
  }
  // No two share bytes: rewriting one changes no other.
  taken[100]!.fill(0xff);
  assert.ok(taken.every((h, i) => i === 100 || h.readUInt32LE(0) === 0x31535246));
});
