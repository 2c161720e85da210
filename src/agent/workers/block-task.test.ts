import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { zstdDecompressSync } from "node:zlib";
import fc from "fast-check";
import { Compression, blockHashes } from "../../wire/index.ts";
import { processChunk, type ChunkResult } from "./block-task.ts";

const KiB = 1024;

function text(bytes: number, seed = 0): Buffer {
  let s = "";
  for (let i = 0; s.length < bytes; i++)
    s += `line ${seed}-${i % 97} status=${[200, 404, 500][i % 3]} path=/api/${i % 13}\n`;
  return Buffer.from(s.slice(0, bytes));
}

/** The chunk rebuilt from a result: zero blocks, then each run's payload decompressed. */
function rebuild(r: ChunkResult, n: number, hbs: number): Buffer {
  const out = Buffer.alloc(n, 0xee);
  r.zero.forEach((z, b) => {
    if (z) out.fill(0, b * hbs, Math.min((b + 1) * hbs, n));
  });
  for (const run of r.runs) {
    const raw =
      run.compression === Compression.ZSTD ? zstdDecompressSync(run.payload) : Buffer.from(run.payload);
    assert.equal(raw.length, run.length);
    assert.deepEqual(Buffer.from(run.hashes), blockHashes(raw, hbs), "hashes are those of the raw bytes");
    raw.copy(out, run.at);
  }
  return out;
}

test("zero blocks split the chunk into runs; text compresses, random travels raw", () => {
  const hbs = 64 * KiB;
  const parts = [Buffer.alloc(hbs), text(2 * hbs), Buffer.alloc(hbs), randomBytes(2 * hbs), text(hbs, 1)];
  const data = Buffer.concat(parts);
  const r = processChunk({ data, hashBlockSize: hbs, compress: true });
  assert.deepEqual([...r.zero], [1, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(
    r.runs.map((x) => [x.at / hbs, x.length / hbs]),
    [
      [1, 2],
      [4, 3],
    ],
  );
  assert.equal(r.runs[0]!.compression, Compression.ZSTD);
  // The second run starts with random data: its sample says it does not shrink.
  assert.equal(r.runs[1]!.compression, Compression.NONE);
  assert.equal(r.compressedRawBytes, 2 * hbs, "only the text run went through zstd whole");
  assert.ok(r.compressedBytes < hbs / 2);
  assert.deepEqual(rebuild(r, data.length, hbs), data);
});

test("without compression every run is a copy the caller's buffer cannot change", () => {
  const hbs = 4 * KiB;
  const data = Buffer.concat([text(3 * hbs), Buffer.alloc(hbs), text(hbs, 2)]);
  const copy = Buffer.from(data);
  const r = processChunk({ data, hashBlockSize: hbs, compress: false });
  assert.ok(r.runs.every((x) => x.compression === Compression.NONE));
  assert.equal(r.compressedRawBytes, 0);
  data.fill(0x55);
  assert.deepEqual(rebuild(r, copy.length, hbs), copy);
});

test("a short last block (the end of a disk) is hashed and sent as it is", () => {
  const hbs = 4 * KiB;
  const data = Buffer.concat([Buffer.alloc(hbs), text(hbs + 100)]);
  const r = processChunk({ data, hashBlockSize: hbs, compress: true });
  assert.deepEqual([...r.zero], [1, 0, 0]);
  assert.equal(r.runs.length, 1);
  assert.equal(r.runs[0]!.length, hbs + 100);
  assert.deepEqual(rebuild(r, data.length, hbs), data);
  const zeros = processChunk({ data: Buffer.alloc(hbs + 512), hashBlockSize: hbs, compress: true });
  assert.deepEqual([...zeros.zero], [1, 1]);
  assert.equal(zeros.runs.length, 0);
});

test("property: any mix of zero, text and random blocks rebuilds exactly", () => {
  const block = fc.constantFrom("zero", "text", "random", "sparse");
  fc.assert(
    fc.property(
      fc.constantFrom(4 * KiB, 16 * KiB),
      fc.array(block, { minLength: 1, maxLength: 24 }),
      fc.integer({ min: 0, max: 4095 }),
      fc.boolean(),
      (hbs, kinds, tail, compress) => {
        const parts = kinds.map((k, i) => {
          if (k === "zero") return Buffer.alloc(hbs);
          if (k === "text") return text(hbs, i);
          if (k === "random") return randomBytes(hbs);
          const b = Buffer.alloc(hbs);
          b[(i * 131) % hbs] = 1; // one byte set: not a zero block
          return b;
        });
        const data = Buffer.concat(parts).subarray(0, Math.max(1, kinds.length * hbs - tail));
        const r = processChunk({ data, hashBlockSize: hbs, compress });
        assert.equal(r.zero.length, Math.ceil(data.length / hbs));
        assert.deepEqual(rebuild(r, data.length, hbs), data);
        for (const run of r.runs) {
          if (run.compression === Compression.ZSTD) assert.ok(run.payload.length <= run.length * 0.9);
        }
      },
    ),
    { numRuns: 60 },
  );
});
