/**
 * zstd frames of DATA payloads, made and read through one long-lived zstd
 * context per thread. `zstdCompressSync` and `zstdDecompressSync` build a
 * stream object and a fresh context for every call, and the context's tables
 * and window are allocated and freed each time (~9% of an agent worker's CPU
 * at 1 MiB per call; ~25% of the time of a level-1 compression of 1 MiB of
 * text, ~40% of a 16 KiB sample's, ~30% of a 1 MiB decompression).
 *
 * Node 24 has no public synchronous API over a reused context, so this drives
 * the native handle of a `zlib.ZstdCompress`/`ZstdDecompress` stream the way
 * Node's own sync functions do (`_handle.writeSync` and `_writeState`, see
 * `processChunkSync` in Node's lib/zlib.js) but without closing it after each
 * frame. A compressor keeps its handle at a frame boundary (it is never
 * `reset()`: Node's reset also drops the compression level), so every frame
 * comes out byte for byte as `zstdCompressSync` makes it; a decompressor is
 * reset before each frame. Each side checks itself against the plain calls
 * when it is created and falls back to them if Node's internals differ;
 * zstd.test.ts fails if the fallback is in use on the Node we ship with.
 */
import {
  ZstdCompress,
  ZstdDecompress,
  constants as zc,
  zstdCompressSync,
  zstdDecompressSync,
} from "node:zlib";
import { WireError } from "./errors.ts";

/** Compresses one block into one zstd frame. */
export interface ZstdCompressor {
  /**
   * One complete zstd frame holding `raw`, the same bytes as
   * `zstdCompressSync(raw, level)`. The result may be a view of the
   * compressor's own memory: valid until its next call, so copy what you keep.
   */
  compress(raw: Uint8Array): Buffer;
  /** True when frames come from the reused context; false on the plain per-call fallback. */
  readonly reused: boolean;
}

/** Decompresses one zstd frame of a known raw length. */
export interface ZstdDecompressor {
  /**
   * The raw bytes of `frame`, in a new buffer of at most `maxLength` bytes
   * (fewer if the frame holds fewer: the caller compares). Throws a WireError
   * (WIRE_BAD_ZSTD) when the frame is damaged, holds more than `maxLength`
   * bytes, or is followed by anything.
   */
  decompress(frame: Uint8Array, maxLength: number): Buffer;
  readonly reused: boolean;
}

/** The parts of Node's zlib stream this module relies on (not public API). */
interface NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
}
interface StreamInternals {
  _handle?: NativeHandle | null;
  /** [output bytes left, input bytes left] after each write. */
  _writeState?: Uint32Array;
  errored: Error | null;
  on(event: "error", listener: (err: Error) => void): unknown;
  destroy(): unknown;
}

interface Native {
  stream: StreamInternals;
  handle: NativeHandle;
  state: Uint32Array;
}

/** A stream's native handle, or undefined when Node's internals are not as expected. */
function nativeOf(stream: StreamInternals): Native | undefined {
  // Node reports a zstd error by destroying the stream, which emits "error" on
  // the next tick: without a listener that would be an uncaught exception.
  stream.on("error", () => undefined);
  const handle = stream._handle;
  const state = stream._writeState;
  if (!handle || typeof handle.writeSync !== "function" || typeof handle.reset !== "function")
    return undefined;
  if (!(state instanceof Uint32Array) || state.length < 2) return undefined;
  return { stream, handle, state };
}

/** ZSTD_COMPRESSBOUND: the largest frame zstd makes from `n` bytes in one call. */
export function zstdCompressBound(n: number): number {
  const small = 128 * 1024;
  return n + (n >>> 8) + (n < small ? (small - n) >>> 11 : 0);
}

/** Text-like bytes that compress, then bytes that do not: the self-checks' input. */
function probeBytes(): Buffer {
  const text = Buffer.from("status=200 GET /api/items?page=7 bytes=5120\n".repeat(120));
  const noise = Buffer.alloc(3000);
  let x = 0x2545f491;
  for (let i = 0; i < noise.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    noise[i] = x & 0xff;
  }
  return Buffer.concat([text, noise]);
}

/**
 * A compressor at `level` (1 for DATA payloads). Frames are made one at a
 * time on the calling thread; create one per thread and keep it.
 */
export function createZstdCompressor(level: number): ZstdCompressor {
  const params = { [zc.ZSTD_c_compressionLevel]: level };
  const plain = (raw: Uint8Array) => zstdCompressSync(raw, { params });
  let native: Native | undefined;
  let out = Buffer.alloc(0);

  function open(): Native | undefined {
    try {
      return nativeOf(new ZstdCompress({ params }) as unknown as StreamInternals);
    } catch {
      return undefined;
    }
  }

  /** The frame from the reused context, or undefined (the context is then dropped). */
  function viaContext(n: Native, raw: Uint8Array): Buffer | undefined {
    const bound = zstdCompressBound(raw.byteLength);
    if (out.length < bound) out = Buffer.allocUnsafeSlow(Math.max(bound, 64 * 1024));
    try {
      n.handle.writeSync(zc.ZSTD_e_end, raw, 0, raw.byteLength, out, 0, bound);
    } catch {
      return undefined;
    }
    const [outLeft, inLeft] = n.state;
    // Room left in the output after ZSTD_e_end means the frame is complete and flushed.
    if (n.stream.errored || inLeft !== 0 || outLeft === undefined || outLeft === 0) return undefined;
    return out.subarray(0, bound - outLeft);
  }

  function compress(raw: Uint8Array): Buffer {
    if (native) {
      const frame = viaContext(native, raw);
      if (frame) return frame;
      // An unfinished frame would run into the next one: never reuse this context.
      native.stream.destroy();
      native = open();
    }
    return plain(raw);
  }

  native = open();
  if (native) {
    // Twice: the second frame shows the context comes back to a frame boundary at the same level.
    const probe = probeBytes();
    const expected = plain(probe);
    for (let i = 0; i < 2 && native; i++) {
      const frame = viaContext(native, probe);
      if (!frame?.equals(expected)) {
        native.stream.destroy();
        native = undefined;
      }
    }
  }
  return {
    compress,
    get reused() {
      return native !== undefined;
    },
  };
}

export function createZstdDecompressor(): ZstdDecompressor {
  let native: Native | undefined;
  const spare = Buffer.alloc(1);

  function open(): Native | undefined {
    try {
      return nativeOf(new ZstdDecompress() as unknown as StreamInternals);
    } catch {
      return undefined;
    }
  }

  function bad(message: string): WireError {
    return new WireError("WIRE_BAD_ZSTD", `zstd payload ${message}: damaged in transit or a faulty sender`);
  }

  function plain(frame: Uint8Array, maxLength: number): Buffer {
    try {
      return zstdDecompressSync(frame, {
        maxOutputLength: Math.max(1, maxLength),
        chunkSize: Math.max(64, maxLength),
      });
    } catch (err) {
      throw bad(`does not decompress within ${maxLength} bytes (${(err as Error).message})`);
    }
  }

  /** Decompresses through `n`; a "drop" result means the context must not be used again. */
  function viaContext(n: Native, frame: Uint8Array, maxLength: number): Buffer | WireError | "drop" {
    const out = Buffer.allocUnsafe(maxLength);
    let produced: number;
    let inLeft: number;
    try {
      // A frame that failed half-way leaves the context inside it: start clean each time.
      n.handle.reset();
      n.handle.writeSync(zc.ZSTD_e_end, frame, 0, frame.byteLength, out, 0, maxLength);
      if (n.stream.errored) return "drop";
      produced = maxLength - n.state[0]!;
      inLeft = n.state[1]!;
      if (produced === maxLength) {
        // Full: one more byte out would mean the frame holds more than the limit.
        n.handle.writeSync(zc.ZSTD_e_end, frame, frame.byteLength - inLeft, inLeft, spare, 0, 1);
        if (n.stream.errored) return "drop";
        if (n.state[0] === 0) return bad(`holds more than the ${maxLength} bytes declared`);
        inLeft = n.state[1]!;
      }
    } catch {
      return "drop";
    }
    if (inLeft !== 0) return bad(`has ${inLeft} bytes after its frame`);
    return produced === maxLength ? out : out.subarray(0, produced);
  }

  function decompress(frame: Uint8Array, maxLength: number): Buffer {
    if (native) {
      const r = viaContext(native, frame, maxLength);
      if (r instanceof WireError) throw r;
      if (r !== "drop") return r;
      // zstd reported an error: Node destroyed the stream; damaged input is expected now and then.
      const err = native.stream.errored;
      native.stream.destroy();
      native = open();
      if (err) throw bad(`does not decompress (${err.message})`);
    }
    return plain(frame, maxLength);
  }

  native = open();
  if (native) {
    const probe = probeBytes();
    const frame = zstdCompressSync(probe);
    for (let i = 0; i < 2 && native; i++) {
      const r = viaContext(native, frame, probe.length);
      if (!(r instanceof Buffer) || !r.equals(probe)) {
        native.stream.destroy();
        native = undefined;
      }
    }
  }
  return {
    decompress,
    get reused() {
      return native !== undefined;
    },
  };
}
