/**
 * The per-byte check of a DATA payload on the replicator: decompress (with an
 * output limit) and compare the BLAKE3 of each hash block with the digests the
 * agent sent. A pure function: worker threads run it for large payloads
 * (payload-worker.ts), the event loop for small ones.
 */
import {
  Compression,
  type CompressionCode,
  type ZstdDecompressor,
  blockHashes,
  createZstdDecompressor,
} from "../wire/index.ts";

export interface PayloadTask {
  payload: Uint8Array;
  compression: CompressionCode;
  /** The raw length the frame declares. */
  length: number;
  hashes: Uint8Array;
  hashBlockSize: number;
}

export type PayloadResult =
  /** `data`: the decompressed bytes when the payload was compressed (else the payload is the data). */
  { ok: true; data?: Uint8Array } | { ok: false; why: "decompress" | "hash"; message?: string };

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** One zstd context per thread (each payload worker has its own copy of this module), made at first use. */
let decompressor: ZstdDecompressor | undefined;

export function checkPayload(t: PayloadTask): PayloadResult {
  let data = asBuffer(t.payload);
  let decompressed: Buffer | undefined;
  if (t.compression === Compression.ZSTD) {
    try {
      decompressor ??= createZstdDecompressor();
      decompressed = decompressor.decompress(data, t.length);
    } catch (err) {
      return { ok: false, why: "decompress", message: (err as Error).message };
    }
    data = decompressed;
  }
  if (data.length !== t.length || !blockHashes(data, t.hashBlockSize).equals(asBuffer(t.hashes))) {
    return { ok: false, why: "hash" };
  }
  return decompressed ? { ok: true, data: decompressed } : { ok: true };
}
