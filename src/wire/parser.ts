import { crc32 } from "node:zlib";
import { BufferReader } from "./buffer-reader.ts";
import { WireError } from "./errors.ts";
import {
  Compression,
  DEFAULT_MAX_FRAME_LENGTH,
  FRAME_PREFIX_BYTES,
  FrameType,
  GENERATION_ID_BYTES,
  HASH_BYTES,
  HelloMode,
  MAX_HASHES_PER_REQUEST,
  type CompressionCode,
  type Frame,
  type HelloModeCode,
  type WireLimits,
} from "./messages.ts";

export interface DecoderOptions extends Partial<WireLimits> {
  /**
   * Memory for a frame whose bytes arrived in several chunks: the decoder
   * copies them into it once the frame is complete (a frame inside one chunk
   * is a view of that chunk, never copied). Called with the frame's length,
   * already checked against the limit; must return a Buffer of exactly that
   * length that nothing else uses until the frame's consumer is done with it.
   * @default Buffer.allocUnsafe
   */
  allocate?: (bytes: number) => Buffer;
}

const NO_FRAMES: readonly Frame[] = Object.freeze([]);

/**
 * Incremental frame decoder: feed it bytes as they arrive, split anywhere; it
 * returns the frames completed so far. A frame's declared length is checked
 * against the limit before anything is allocated for it, and what it holds of
 * an incomplete frame is only the chunks that arrived (views, not copies).
 * Malformed input throws a WireError; the decoder is then unusable (the
 * stream has lost sync).
 */
export class FrameDecoder {
  private readonly limits: WireLimits;
  private readonly allocate: (bytes: number) => Buffer;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes needed before another frame can complete (its whole length once its prefix was read). */
  private needed = FRAME_PREFIX_BYTES;
  private failed: WireError | undefined;

  constructor(options: DecoderOptions = {}) {
    this.limits = { maxFrameLength: options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH };
    this.allocate = options.allocate ?? ((n) => Buffer.allocUnsafe(n));
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): readonly Frame[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    // A large frame arrives in dozens of TLS records: nothing to do until its last one.
    if (this.buffered < this.needed) return NO_FRAMES;
    const frames: Frame[] = [];
    try {
      for (;;) {
        this.needed = FRAME_PREFIX_BYTES;
        if (this.buffered < FRAME_PREFIX_BYTES) break;
        const length = this.peekLength();
        if (length > this.limits.maxFrameLength) {
          throw new WireError(
            "WIRE_FRAME_TOO_LARGE",
            `frame declares ${length} bytes, more than the limit of ${this.limits.maxFrameLength}`,
            { length, limit: this.limits.maxFrameLength },
          );
        }
        if (length < 1)
          throw new WireError("WIRE_FRAME_TOO_SHORT", "frame declares an empty body", { length });
        const total = FRAME_PREFIX_BYTES + length;
        if (this.buffered < total) {
          this.needed = total;
          break;
        }
        frames.push(parseFrame(this.take(total)));
      }
    } catch (err) {
      this.failed = err instanceof WireError ? err : new WireError("WIRE_BAD_FIELD", String(err));
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
    return frames;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const head = Buffer.alloc(4);
    let got = 0;
    for (const c of this.chunks) {
      const n = Math.min(4 - got, c.length);
      c.copy(head, got, 0, n);
      got += n;
      if (got === 4) break;
    }
    return head.readUInt32BE(0);
  }

  /** Removes and returns the next n buffered bytes (a view when they sit in one chunk). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = this.allocate(n);
      if (out.length !== n) throw new RangeError(`frame memory of ${out.length} bytes for a ${n}-byte frame`);
      let got = 0;
      while (got < n) {
        const c = this.chunks[0]!;
        const k = Math.min(n - got, c.length);
        c.copy(out, got, 0, k);
        got += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** Decodes one complete frame (prefix included). */
export function parseFrame(buf: Buffer): Frame {
  if (buf.length < FRAME_PREFIX_BYTES + 1) {
    throw new WireError("WIRE_FRAME_TOO_SHORT", `frame of ${buf.length} bytes is shorter than its prefix`);
  }
  const length = buf.readUInt32BE(0);
  if (length !== buf.length - FRAME_PREFIX_BYTES) {
    throw new WireError(
      "WIRE_BAD_FIELD",
      `frame length ${length} does not match ${buf.length - FRAME_PREFIX_BYTES}`,
    );
  }
  const crc = buf.readUInt32BE(4);
  const r = new BufferReader(buf, FRAME_PREFIX_BYTES);
  const type = r.u8("type");
  let frame: Frame;
  let headEnd: number;
  switch (type) {
    case FrameType.HELLO: {
      const protocolVersion = r.u16("protocolVersion");
      const mode = r.u8("mode");
      if (mode !== HelloMode.NEW && mode !== HelloMode.RESUME) badField("mode", mode);
      frame = {
        type: "HELLO",
        protocolVersion,
        mode: mode as HelloModeCode,
        sourceServerId: r.string(8, "sourceServerId"),
        diskId: r.string(8, "diskId"),
        diskSize: r.u64("diskSize"),
        logicalBlockSize: r.u32("logicalBlockSize"),
        hashBlockSize: r.u32("hashBlockSize"),
        generationId: r.bytes(GENERATION_ID_BYTES, "generationId"),
        token: r.string(16, "token"),
      };
      headEnd = endOfFrame(r);
      break;
    }
    case FrameType.WELCOME:
      frame = {
        type: "WELCOME",
        protocolVersion: r.u16("protocolVersion"),
        generationId: r.bytes(GENERATION_ID_BYTES, "generationId"),
        resumeOffset: r.u64("resumeOffset"),
        durableSeq: r.u64("durableSeq"),
        maxDataLength: r.u32("maxDataLength"),
        heartbeatIntervalMs: r.u32("heartbeatIntervalMs"),
      };
      headEnd = endOfFrame(r);
      break;
    case FrameType.DATA: {
      const seq = r.u64("seq");
      const offset = r.u64("offset");
      const rawLength = r.u32("length");
      const compression = r.u8("compression");
      if (compression !== Compression.NONE && compression !== Compression.ZSTD)
        badField("compression", compression);
      const hashCount = r.u16("hashCount");
      if (rawLength === 0) badField("length", rawLength);
      if (hashCount === 0) badField("hashCount", hashCount);
      const hashes = r.bytes(hashCount * HASH_BYTES, "hashes");
      headEnd = r.offset;
      const payload = r.bytes(r.remaining, "payload");
      if (compression === Compression.NONE && payload.length !== rawLength) {
        badField("length", rawLength, `uncompressed payload carries ${payload.length} bytes`);
      }
      if (payload.length === 0) badField("payload", 0, "empty payload");
      frame = {
        type: "DATA",
        seq,
        offset,
        length: rawLength,
        compression: compression as CompressionCode,
        hashes,
        payload,
      };
      break;
    }
    case FrameType.ZERO:
      frame = { type: "ZERO", seq: r.u64("seq"), offset: r.u64("offset"), length: r.u64("length") };
      if (frame.length === 0n) badField("length", 0);
      headEnd = endOfFrame(r);
      break;
    case FrameType.BARRIER:
      frame = {
        type: "BARRIER",
        seq: r.u64("seq"),
        barrierId: r.u64("barrierId"),
        flags: r.u8("flags"),
        timestampMs: r.u64("timestampMs"),
      };
      headEnd = endOfFrame(r);
      break;
    case FrameType.HASH_REQUEST: {
      frame = {
        type: "HASH_REQUEST",
        requestId: r.u32("requestId"),
        firstBlock: r.u64("firstBlock"),
        count: r.u32("count"),
      };
      if (frame.count === 0 || frame.count > MAX_HASHES_PER_REQUEST) badField("count", frame.count);
      headEnd = endOfFrame(r);
      break;
    }
    case FrameType.HASHES: {
      const requestId = r.u32("requestId");
      const firstBlock = r.u64("firstBlock");
      const count = r.u32("count");
      if (count > MAX_HASHES_PER_REQUEST) badField("count", count);
      frame = { type: "HASHES", requestId, firstBlock, hashes: r.bytes(count * HASH_BYTES, "hashes") };
      headEnd = endOfFrame(r);
      break;
    }
    case FrameType.ACK:
      frame = { type: "ACK", seq: r.u64("seq") };
      headEnd = endOfFrame(r);
      break;
    case FrameType.ERROR:
      frame = { type: "ERROR", code: r.string(8, "code"), message: r.string(16, "message") };
      headEnd = endOfFrame(r);
      break;
    case FrameType.HEARTBEAT:
      frame = { type: "HEARTBEAT", timestampMs: r.u64("timestampMs") };
      headEnd = endOfFrame(r);
      break;
    default:
      throw new WireError("WIRE_UNKNOWN_TYPE", `unknown frame type 0x${type.toString(16).padStart(2, "0")}`, {
        frameType: type,
      });
  }
  const actual = crc32(buf.subarray(FRAME_PREFIX_BYTES, headEnd));
  if (actual !== crc) {
    throw new WireError("WIRE_BAD_CRC", `frame ${frame.type} failed its CRC check (damaged in transit)`, {
      frameType: frame.type,
    });
  }
  return frame;
}

function endOfFrame(r: BufferReader): number {
  if (r.remaining !== 0) {
    throw new WireError("WIRE_TRAILING_BYTES", `${r.remaining} unexpected bytes after the last field`, {
      trailing: r.remaining,
    });
  }
  return r.offset;
}

function badField(field: string, value: number, why = "invalid value"): never {
  throw new WireError("WIRE_BAD_FIELD", `field "${field}" = ${value}: ${why}`, { field, value });
}
