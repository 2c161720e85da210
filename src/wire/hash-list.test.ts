import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { WireError } from "./errors.ts";
import { blockCount, decodeHashList, encodeHashList } from "./hash-list.ts";

const listArb = fc
  .record({ shift: fc.integer({ min: 9, max: 20 }), size: fc.integer({ min: 0, max: 256 * 1024 }) })
  .chain(({ shift, size }) => {
    const hashBlockSize = 2 ** shift;
    const n = blockCount(size, hashBlockSize);
    return fc
      .uint8Array({ minLength: n * 32, maxLength: n * 32 })
      .map((h) => ({ hashBlockSize, diskSize: size, hashes: Buffer.from(h) }));
  });

test("hash lists round-trip", () => {
  fc.assert(
    fc.property(listArb, (list) => {
      assert.deepEqual(decodeHashList(encodeHashList(list)), list);
    }),
    { numRuns: 200 },
  );
});

test("truncated or mutated hash lists give typed errors only", () => {
  fc.assert(
    fc.property(
      listArb,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.boolean(),
      (list, at, xor, truncate) => {
        const buf = Buffer.from(encodeHashList(list));
        const input = truncate ? buf.subarray(0, at % buf.length) : buf;
        if (!truncate) input[at % 20]! ^= xor; // damage the header
        try {
          const back = decodeHashList(input);
          assert.equal(back.hashes.length, blockCount(back.diskSize, back.hashBlockSize) * 32);
        } catch (e) {
          assert.ok(e instanceof WireError);
        }
      },
    ),
    { numRuns: 500 },
  );
});
