import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { constants as zc, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import fc from "fast-check";
import { WireError } from "./errors.ts";
import { createZstdCompressor, createZstdDecompressor, zstdCompressBound } from "./zstd.ts";

const plain = (raw: Uint8Array, level: number) =>
  zstdCompressSync(raw, { params: { [zc.ZSTD_c_compressionLevel]: level } });

function text(bytes: number, seed: number): Buffer {
  let s = "";
  for (let i = 0; s.length < bytes; i++)
    s += `line ${seed}-${i % 89} status=${[200, 404, 500][i % 3]} id=${i * 7919}\n`;
  return Buffer.from(s.slice(0, bytes));
}

/** Text, random bytes, zeros and a repeated byte, of any size up to `max` (0 included). */
function blockArb(max: number): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.integer({ min: 0, max }), fc.constantFrom("text", "random", "zeros", "byte"), fc.nat())
    .map(([n, kind, seed]) => {
      if (kind === "text") return text(n, seed);
      if (kind === "random") return randomBytes(n);
      return Buffer.alloc(n, kind === "zeros" ? 0 : seed & 0xff);
    });
}

// If this fails, Node's zlib internals changed and Ferry silently pays a new
// zstd context per block again: see the header of zstd.ts.
test("on this Node both sides run on a reused context, not the fallback", () => {
  assert.equal(createZstdCompressor(1).reused, true);
  assert.equal(createZstdDecompressor().reused, true);
});

test("many blocks through one context: each frame is the bytes zstdCompressSync makes", () => {
  const c = createZstdCompressor(1);
  fc.assert(
    fc.property(fc.array(blockArb(300 * 1024), { minLength: 1, maxLength: 12 }), (blocks) => {
      for (const raw of blocks) {
        const frame = Buffer.from(c.compress(raw));
        assert.ok(frame.equals(plain(raw, 1)), `a ${raw.length}-byte block`);
        assert.ok(frame.length <= zstdCompressBound(raw.length));
        assert.ok(zstdDecompressSync(frame).equals(raw));
      }
    }),
    { numRuns: 40 },
  );
  assert.equal(c.reused, true, "no block made it fall back");
});

test("1 MiB blocks that shrink and that do not, and odd sizes, round-trip through reused contexts on both sides", () => {
  const c = createZstdCompressor(1);
  const d = createZstdDecompressor();
  const blocks = [text(1 << 20, 1), randomBytes(1 << 20), Buffer.alloc(0), randomBytes(1), text(65_537, 2)];
  const kept: [Buffer, Buffer][] = [];
  for (let round = 0; round < 3; round++) {
    for (const raw of blocks) {
      const back = d.decompress(c.compress(raw), raw.length);
      assert.ok(back.equals(raw), `${raw.length} bytes, round ${round}`);
      kept.push([back, raw]);
    }
  }
  // The decompressed bytes are the caller's: later frames did not write over them.
  for (const [back, raw] of kept) assert.ok(back.equals(raw));
  assert.ok(c.reused && d.reused);
});

test("a frame's view is only valid until the next call, so callers copy it", () => {
  const c = createZstdCompressor(1);
  const a = text(10_000, 1);
  const first = c.compress(a);
  const kept = Buffer.from(first);
  c.compress(text(10_000, 2));
  assert.ok(kept.equals(plain(a, 1)));
});

test("interleaved levels: one compressor per level, each keeps its own level", () => {
  const levels = [1, 3, 9];
  const cs = levels.map((l) => createZstdCompressor(l));
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), blockArb(64 * 1024)), { maxLength: 20 }),
      (steps) => {
        for (const [i, raw] of steps) assert.ok(cs[i]!.compress(raw).equals(plain(raw, levels[i]!)));
      },
    ),
    { numRuns: 30 },
  );
});

test("blocks in shared memory and plain Uint8Arrays are read in place", () => {
  const c = createZstdCompressor(1);
  const d = createZstdDecompressor();
  const sab = new Uint8Array(new SharedArrayBuffer(256 * 1024));
  sab.set(text(sab.length, 3));
  const view = sab.subarray(1000, 200_000);
  const frame = new Uint8Array(c.compress(view));
  assert.ok(Buffer.from(d.decompress(frame, view.length)).equals(view));
});

test("damaged, truncated, oversize and trailing-garbage frames are refused, and the next good frame still decodes", () => {
  const c = createZstdCompressor(1);
  const d = createZstdDecompressor();
  const raw = text(200_000, 4);
  const good = Buffer.from(c.compress(raw));
  const bad = (frame: Uint8Array, max: number) =>
    assert.throws(
      () => d.decompress(frame, max),
      (e: unknown) => e instanceof WireError && e.code === "WIRE_BAD_ZSTD",
    );

  bad(randomBytes(300), raw.length);
  bad(good, raw.length - 1);
  bad(Buffer.concat([good, Buffer.from([1, 2, 3])]), raw.length + 100);
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1]! ^= 0xff;
  try {
    // A flipped byte may still decode (to other bytes): the payload's BLAKE3 check catches that.
    assert.ok(!d.decompress(flipped, raw.length).equals(raw));
  } catch (err) {
    assert.ok(err instanceof WireError);
  }
  // A truncated frame gives fewer bytes than declared, or an error; never the whole block.
  const cut = good.subarray(0, good.length - 7);
  try {
    assert.ok(d.decompress(cut, raw.length).length < raw.length);
  } catch (err) {
    assert.ok(err instanceof WireError);
  }
  assert.ok(d.decompress(good, raw.length).equals(raw), "the context is clean after each refusal");
  // Room to spare: exactly the frame's bytes come back.
  assert.ok(d.decompress(good, raw.length + 5000).equals(raw));
  assert.equal(d.reused, true);
});

test("property: any sequence of good and damaged frames; good ones always decode exactly", () => {
  const c = createZstdCompressor(1);
  const d = createZstdDecompressor();
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(blockArb(100 * 1024), fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })))),
        {
          maxLength: 10,
        },
      ),
      (steps) => {
        for (const [raw, damage] of steps) {
          const frame = Buffer.from(c.compress(raw));
          if (!damage) {
            assert.ok(d.decompress(frame, raw.length).equals(raw));
            continue;
          }
          frame[damage[0] % frame.length]! ^= damage[1];
          try {
            const out = d.decompress(frame, raw.length);
            assert.ok(out.length <= raw.length);
          } catch (err) {
            assert.ok(err instanceof WireError, String(err));
          }
        }
      },
    ),
    { numRuns: 60 },
  );
});
