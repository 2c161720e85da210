import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import {
  Compression,
  FrameDecoder,
  FrameType,
  HelloMode,
  PROTOCOL_VERSION,
  WireError,
  encodeFrame,
  encodeFrameToBuffer,
  parseFrame,
  type Frame,
} from "./index.ts";

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const id = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/);

const frameArb: fc.Arbitrary<Frame> = fc
  .oneof(
    fc.record({
      type: fc.constant("HELLO" as const),
      protocolVersion: fc.integer({ min: 0, max: 0xffff }),
      mode: fc.constantFrom(HelloMode.NEW, HelloMode.RESUME),
      sourceServerId: id,
      diskId: id,
      diskSize: u64,
      logicalBlockSize: u32,
      hashBlockSize: u32,
      generationId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
      token: fc.string({ maxLength: 200, unit: "binary" }),
    }),
    fc.record({
      type: fc.constant("WELCOME" as const),
      protocolVersion: fc.integer({ min: 0, max: 0xffff }),
      generationId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
      resumeOffset: u64,
      durableSeq: u64,
      maxDataLength: u32,
      heartbeatIntervalMs: u32,
    }),
    fc
      .record({
        seq: u64,
        offset: u64,
        compressed: fc.boolean(),
        hashCount: fc.integer({ min: 1, max: 8 }),
        payload: fc.uint8Array({ minLength: 1, maxLength: 300 }),
        rawLength: fc.integer({ min: 1, max: 1 << 20 }),
      })
      .map((d): Frame => ({
        type: "DATA",
        seq: d.seq,
        offset: d.offset,
        length: d.compressed ? d.rawLength : d.payload.length,
        compression: d.compressed ? Compression.ZSTD : Compression.NONE,
        hashes: Buffer.alloc(32 * d.hashCount, d.hashCount),
        payload: Buffer.from(d.payload),
      })),
    fc.record({
      type: fc.constant("ZERO" as const),
      seq: u64,
      offset: u64,
      length: u64.filter((v) => v > 0n),
    }),
    fc.record({
      type: fc.constant("BARRIER" as const),
      seq: u64,
      barrierId: u64,
      flags: fc.integer({ min: 0, max: 255 }),
      timestampMs: u64,
    }),
    fc.record({ type: fc.constant("ACK" as const), seq: u64 }),
    fc.record({
      type: fc.constant("HASH_REQUEST" as const),
      requestId: u32,
      firstBlock: u64,
      count: fc.integer({ min: 1, max: 65536 }),
    }),
    fc
      .record({ requestId: u32, firstBlock: u64, hashes: fc.uint8Array({ maxLength: 32 * 20 }) })
      .map((h) => ({
        type: "HASHES" as const,
        requestId: h.requestId,
        firstBlock: h.firstBlock,
        hashes: Buffer.from(h.hashes.subarray(0, h.hashes.length - (h.hashes.length % 32))),
      })),
    fc.record({
      type: fc.constant("ERROR" as const),
      code: fc.stringMatching(/^[A-Z_]{1,30}$/),
      message: fc.string({ maxLength: 500, unit: "binary" }),
    }),
    fc.record({ type: fc.constant("HEARTBEAT" as const), timestampMs: u64 }),
    // fast-check's records have a null prototype; decoded frames are plain objects.
  )
  .map((f) => ({ ...f }) as Frame);

/** An independent, hand-written encoder for two frame types (cross-checks the serializer). */
function buildAck(seq: bigint): Buffer {
  const body = Buffer.alloc(9);
  body[0] = FrameType.ACK;
  body.writeBigUInt64BE(seq, 1);
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(body.length, 0);
  prefix.writeUInt32BE(crc32(body), 4);
  return Buffer.concat([prefix, body]);
}

function buildData(seq: bigint, offset: bigint, payload: Buffer, hash: Buffer): Buffer {
  const head = Buffer.alloc(1 + 8 + 8 + 4 + 1 + 2);
  let p = 0;
  head[p++] = FrameType.DATA;
  head.writeBigUInt64BE(seq, p);
  p += 8;
  head.writeBigUInt64BE(offset, p);
  p += 8;
  head.writeUInt32BE(payload.length, p);
  p += 4;
  head[p++] = Compression.NONE;
  head.writeUInt16BE(1, p);
  const crcPart = Buffer.concat([head, hash]);
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(crcPart.length + payload.length, 0);
  prefix.writeUInt32BE(crc32(crcPart), 4);
  return Buffer.concat([prefix, crcPart, payload]);
}

function decodeAll(bytes: Buffer, cuts: number[]): Frame[] {
  const d = new FrameDecoder();
  const out: Frame[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...d.push(bytes.subarray(prev, c)));
    prev = c;
  }
  assert.equal(d.bufferedBytes, 0);
  return out;
}

test("every frame type round-trips", () => {
  fc.assert(
    fc.property(frameArb, (frame) => {
      assert.deepEqual(parseFrame(encodeFrameToBuffer(frame)), frame);
    }),
    { numRuns: 2000 },
  );
});

test("the serializer agrees byte for byte with an independent builder", () => {
  assert.deepEqual(
    encodeFrameToBuffer({ type: "ACK", seq: 0x0102030405060708n }),
    buildAck(0x0102030405060708n),
  );
  const payload = Buffer.from("hello, block");
  const hash = Buffer.alloc(32, 7);
  const built = buildData(9n, 4096n, payload, hash);
  assert.deepEqual(
    encodeFrameToBuffer({
      type: "DATA",
      seq: 9n,
      offset: 4096n,
      length: payload.length,
      compression: Compression.NONE,
      hashes: hash,
      payload,
    }),
    built,
  );
  const parsed = parseFrame(built);
  assert.equal(parsed.type, "DATA");
});

test("DATA is encoded without copying its payload", () => {
  const payload = Buffer.alloc(1 << 20, 1);
  const parts = encodeFrame({
    type: "DATA",
    seq: 1n,
    offset: 0n,
    length: payload.length,
    compression: Compression.NONE,
    hashes: Buffer.alloc(32 * 16),
    payload,
  });
  assert.equal(parts.length, 2);
  assert.equal(parts[1], payload);
});

test("a stream of frames decodes identically when split at every byte", () => {
  const frames: Frame[] = [
    {
      type: "HELLO",
      protocolVersion: PROTOCOL_VERSION,
      mode: HelloMode.NEW,
      sourceServerId: "s-0123456789abcdefg",
      diskId: "sda",
      diskSize: 1n << 40n,
      logicalBlockSize: 512,
      hashBlockSize: 65536,
      generationId: Buffer.alloc(16, 3),
      token: "secret",
    },
    {
      type: "DATA",
      seq: 1n,
      offset: 0n,
      length: 5,
      compression: Compression.NONE,
      hashes: Buffer.alloc(32, 1),
      payload: Buffer.from("abcde"),
    },
    { type: "ZERO", seq: 2n, offset: 5n, length: 1000n },
    { type: "BARRIER", seq: 3n, barrierId: 1n, flags: 1, timestampMs: 1700000000000n },
    { type: "ACK", seq: 3n },
    { type: "HASH_REQUEST", requestId: 7, firstBlock: 16n, count: 4 },
    { type: "HASHES", requestId: 7, firstBlock: 16n, hashes: Buffer.alloc(128, 9) },
    { type: "HEARTBEAT", timestampMs: 5n },
    { type: "ERROR", code: "BAD_TOKEN", message: "wrong token — check --token" },
  ];
  const bytes = Buffer.concat(frames.map(encodeFrameToBuffer));
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(decodeAll(bytes, [cut]), frames, `cut at ${cut}`);
  }
  // And one byte at a time.
  assert.deepEqual(
    decodeAll(
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    ),
    frames,
  );
});

test("random chunking never changes what is decoded", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, rawCuts) => {
        const bytes = Buffer.concat(frames.map(encodeFrameToBuffer));
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        assert.deepEqual(decodeAll(bytes, cuts), frames);
      },
    ),
    { numRuns: 500 },
  );
});

test("a frame split across chunks is assembled in the memory the allocator gives; one inside a chunk is a view", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, rawCuts) => {
        const encoded = frames.map(encodeFrameToBuffer);
        const bytes = Buffer.concat(encoded);
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const given: Buffer[] = [];
        // Memory full of junk: every byte of an assembled frame must be overwritten.
        const d = new FrameDecoder({ allocate: (n) => (given.push(Buffer.alloc(n, 0xa5)), given.at(-1)!) });
        const out: Frame[] = [];
        let prev = 0;
        for (const c of [...cuts, bytes.length]) {
          const chunk = bytes.subarray(prev, c);
          out.push(...d.push(chunk));
          prev = c;
        }
        assert.deepEqual(out, frames);
        // One allocation per frame that straddles a cut, of exactly its length.
        let start = 0;
        const straddling: number[] = [];
        for (const e of encoded) {
          const end = start + e.length;
          if (cuts.some((c) => c > start && c < end)) straddling.push(e.length);
          start = end;
        }
        assert.deepEqual(
          given.map((g) => g.length),
          straddling,
        );
      },
    ),
    { numRuns: 1000 },
  );
});

test("an oversize length is refused before anything is buffered for it", () => {
  const d = new FrameDecoder({ maxFrameLength: 1024 });
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(0xffffffff, 0);
  assert.throws(
    () => d.push(prefix),
    (e: unknown) => e instanceof WireError && e.code === "WIRE_FRAME_TOO_LARGE",
  );
  // The decoder stays failed: the stream has lost sync.
  assert.throws(() => d.push(Buffer.alloc(1)), WireError);
});

test("an incomplete frame is held, not parsed, and costs only what arrived", () => {
  const d = new FrameDecoder();
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE(4 * 1024 * 1024, 0);
  assert.deepEqual(d.push(prefix), []);
  assert.equal(d.bufferedBytes, 8);
});

test("damaged heads are detected by the CRC", () => {
  fc.assert(
    fc.property(frameArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (frame, at, xor) => {
      const parts = encodeFrame(frame);
      const head = Buffer.from(parts[0]!);
      const pos = 8 + (at % (head.length - 8)); // a byte of the head after the prefix
      head[pos]! ^= xor;
      const bytes = parts.length === 2 ? Buffer.concat([head, parts[1]!]) : head;
      assert.throws(
        () => parseFrame(bytes),
        (e: unknown) => e instanceof WireError,
      );
    }),
    { numRuns: 2000 },
  );
});

test("mutated lengths, types and truncations yield only typed errors", () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("length" as const), value: u32 }),
    fc.record({ kind: fc.constant("type" as const), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("truncate" as const), value: fc.nat() }),
    fc.record({ kind: fc.constant("byte" as const), value: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant("append" as const), value: fc.integer({ min: 1, max: 64 }) }),
  );
  fc.assert(
    fc.property(frameArb, mutation, (frame, m) => {
      const bytes = Buffer.from(encodeFrameToBuffer(frame));
      let input = bytes;
      switch (m.kind) {
        case "length":
          input.writeUInt32BE(m.value, 0);
          break;
        case "type":
          input[8] = m.value;
          break;
        case "truncate":
          input = bytes.subarray(0, m.value % bytes.length);
          break;
        case "byte":
          input[m.value % bytes.length]! ^= m.xor;
          break;
        case "append":
          input = Buffer.concat([bytes, Buffer.alloc(m.value, 0xee)]);
          break;
      }
      const d = new FrameDecoder({ maxFrameLength: 1 << 21 });
      try {
        const out = d.push(input);
        // Whatever decodes must be a well-formed frame that re-encodes to the same bytes.
        for (const f of out) assert.ok(encodeFrameToBuffer(f).length > 0);
        assert.ok(d.bufferedBytes <= input.length);
      } catch (e) {
        assert.ok(e instanceof WireError, `untyped error: ${String(e)}`);
      }
    }),
    { numRuns: 5000 },
  );
});

test("invalid UTF-8 in a string field is refused", () => {
  const bytes = Buffer.from(encodeFrameToBuffer({ type: "ERROR", code: "AB", message: "xy" }));
  // Replace "xy" with an invalid sequence and fix the CRC.
  bytes[bytes.length - 2] = 0xc3;
  bytes[bytes.length - 1] = 0x28;
  bytes.writeUInt32BE(crc32(bytes.subarray(8)), 4);
  assert.throws(
    () => parseFrame(bytes),
    (e: unknown) => e instanceof WireError && e.code === "WIRE_BAD_FIELD",
  );
});
