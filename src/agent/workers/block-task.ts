/**
 * The per-byte work of the block pipeline, on one chunk read from the disk:
 * find the zero hash blocks, and for each run of non-zero blocks compute the
 * BLAKE3 hashes and the payload (zstd level 1, or a copy of the raw bytes).
 * A pure function: the worker threads run it, and so does the event loop when
 * the pool has no workers.
 */
import {
  Compression,
  type CompressionCode,
  type ZstdCompressor,
  blockHashes,
  createZstdCompressor,
  isZeroRange,
} from "../../wire/index.ts";

/** A block must shrink by at least this much to travel compressed. */
const MIN_SAVING = 0.1;
/** Runs at least this long are judged on a sample before compressing them whole. */
const SAMPLE_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);

export interface ChunkTask {
  /** The chunk's bytes: a whole number of hash blocks except at the end of the disk. */
  data: Uint8Array;
  hashBlockSize: number;
  /** Try zstd (false: every run travels raw). */
  compress: boolean;
  /**
   * Leave raw runs in `data` (payload empty, `inPlace` set): the caller sends
   * them from there and keeps the memory until the socket took them. @default false
   */
  rawInPlace?: boolean;
}

export interface DataRun {
  /** Offset of the run inside the chunk. */
  at: number;
  length: number;
  hashes: Uint8Array;
  /** Bytes owned by the result (never a view of the task's data); empty when `inPlace`. */
  payload: Uint8Array;
  compression: CompressionCode;
  /** The payload is the raw bytes, left in the task's data at `at` (see ChunkTask.rawInPlace). */
  inPlace?: boolean;
}

export interface ChunkResult {
  /** One byte per hash block: 1 when the block is all zeros. */
  zero: Uint8Array;
  runs: DataRun[];
  /** Time spent in zstd and in BLAKE3 (ms). */
  compressMs: number;
  hashMs: number;
  /** Raw bytes that went through zstd (whole runs, not samples) and what came out of it. */
  compressedRawBytes: number;
  compressedBytes: number;
}

export function processChunk(task: ChunkTask): ChunkResult {
  const { hashBlockSize: hbs } = task;
  const data = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength);
  const n = data.length;
  const blocks = Math.ceil(n / hbs);
  const zero = new Uint8Array(blocks);
  const result: ChunkResult = {
    zero,
    runs: [],
    compressMs: 0,
    hashMs: 0,
    compressedRawBytes: 0,
    compressedBytes: 0,
  };
  let runStart = -1;
  for (let b = 0; b <= blocks; b++) {
    const at = b * hbs;
    const isZeroBlock = b < blocks && isZeroRange(data, at, Math.min(at + hbs, n));
    if (isZeroBlock) zero[b] = 1;
    if (b === blocks || isZeroBlock) {
      if (runStart >= 0) result.runs.push(dataRun(data, runStart, Math.min(at, n), task, result));
      runStart = -1;
    } else if (runStart < 0) {
      runStart = at;
    }
  }
  return result;
}

function dataRun(data: Buffer, start: number, end: number, task: ChunkTask, acc: ChunkResult): DataRun {
  const raw = data.subarray(start, end);
  let t = performance.now();
  const hashes = blockHashes(raw, task.hashBlockSize);
  acc.hashMs += performance.now() - t;
  t = performance.now();
  const z = task.compress ? tryCompress(raw) : undefined;
  acc.compressMs += performance.now() - t;
  if (z) {
    acc.compressedRawBytes += raw.length;
    acc.compressedBytes += z.length;
    return { at: start, length: raw.length, hashes, payload: z, compression: Compression.ZSTD };
  }
  if (task.rawInPlace) {
    return {
      at: start,
      length: raw.length,
      hashes,
      payload: EMPTY,
      compression: Compression.NONE,
      inPlace: true,
    };
  }
  // The chunk's memory is read into again once this returns: the payload needs its own bytes.
  return { at: start, length: raw.length, hashes, payload: Buffer.from(raw), compression: Compression.NONE };
}

/** One zstd context per thread (each worker has its own copy of this module), made at first use. */
let compressor: ZstdCompressor | undefined;

/** The compressed bytes (in memory of their own) when they save at least MIN_SAVING, else undefined. */
function tryCompress(raw: Buffer): Buffer | undefined {
  compressor ??= createZstdCompressor(1);
  // Random data (encrypted, already compressed) costs zstd as much as text and
  // gains nothing: a sample tells cheaply.
  if (raw.length >= 4 * SAMPLE_BYTES) {
    const sample = raw.subarray(0, SAMPLE_BYTES);
    if (compressor.compress(sample).length > sample.length * (1 - MIN_SAVING)) return undefined;
  }
  const z = compressor.compress(raw);
  if (z.length > raw.length * (1 - MIN_SAVING)) return undefined;
  // The frame lies in the compressor's memory, which its next call reuses; an
  // ArrayBuffer of its own is also what a worker transfers without a copy.
  const own = Buffer.allocUnsafeSlow(z.length);
  own.set(z);
  return own;
}
