/**
 * Log segments: the immutable objects a staging volume is made of.
 *
 *   record*   one per run of consecutive blocks written together
 *     header  32 bytes: magic "FRS1", crc32 (of bytes 8..31 and the hashes),
 *             firstBlock u48, count u32, dataLength u32, flags u8 (1 = zeros)
 *     hashes  count × 32-byte BLAKE3 (absent for a zero run)
 *     data    dataLength bytes (absent for a zero run)
 *   index     every record's header fields + its data offset + its hashes,
 *             so a segment's whole index is one ranged read
 *   footer    48 bytes: magic "FSX1", version, recordsLength, indexLength,
 *             recordCount, blockSize, indexCrc, footerCrc
 *
 * Keys: `<volume>/seg/<from>-<to>`, 12-digit sequence numbers; a segment
 * written by the replicator has from = to, a merged one covers [from, to]
 * and supersedes the segments inside that range.
 */
import { crc32 } from "node:zlib";
import { FerryError } from "../../lib/errors.ts";
import { HASH_BYTES } from "../../wire/index.ts";
import type { ByteRange } from "./object-store.ts";

export const RECORD_HEADER_BYTES = 32;
export const FOOTER_BYTES = 48;
const RECORD_MAGIC = 0x31535246; // "FRS1"
const FOOTER_MAGIC = 0x31585346; // "FSX1"
const INDEX_ENTRY_BYTES = 24;
export const FLAG_ZERO = 1;

/** One run of blocks in a segment. */
export interface SegmentRecord {
  firstBlock: number;
  count: number;
  zero: boolean;
  /** Offset of the record's data in the segment (of its header for a zero run). */
  dataOffset: number;
  dataLength: number;
  /** count × 32 bytes; empty for a zero run. */
  hashes: Buffer;
}

export interface SegmentRef {
  key: string;
  from: number;
  to: number;
  size: number;
}

export function segmentKey(volumePrefix: string, from: number, to: number): string {
  return `${volumePrefix}seg/${String(from).padStart(12, "0")}-${String(to).padStart(12, "0")}`;
}

export function parseSegmentKey(volumePrefix: string, key: string, size: number): SegmentRef | undefined {
  const m = /^seg\/(\d{12})-(\d{12})$/.exec(key.slice(volumePrefix.length));
  if (!key.startsWith(volumePrefix) || !m) return undefined;
  return { key, from: Number(m[1]), to: Number(m[2]), size };
}

/**
 * Header of one record (its hashes and data follow it), written into `into`
 * (32 zeroed bytes, e.g. from a RecordHeaders slab) or a new buffer.
 */
export function encodeRecordHeader(
  r: {
    firstBlock: number;
    count: number;
    zero: boolean;
    dataLength: number;
    hashes: Buffer;
  },
  into: Buffer = Buffer.alloc(RECORD_HEADER_BYTES),
): Buffer {
  const h = into;
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h.writeUIntLE(r.firstBlock, 8, 6);
  h.writeUInt32LE(r.count, 16);
  h.writeUInt32LE(r.dataLength, 20);
  h.writeUInt8(r.zero ? FLAG_ZERO : 0, 24);
  let crc = crc32(h.subarray(8));
  if (!r.zero) crc = crc32(r.hashes, crc);
  h.writeUInt32LE(crc, 4);
  return h;
}

/**
 * Zeroed 32-byte buffers for record headers, cut from 64 KiB slabs: a
 * Buffer.alloc(32) per record is an ArrayBuffer of its own per 4 KiB write.
 * A slab is never reused; it goes once no header in it is referenced.
 */
export class RecordHeaders {
  private slab = Buffer.alloc(0);
  private used = 0;

  take(): Buffer {
    if (this.used + RECORD_HEADER_BYTES > this.slab.length) {
      this.slab = Buffer.alloc(2048 * RECORD_HEADER_BYTES);
      this.used = 0;
    }
    const h = this.slab.subarray(this.used, this.used + RECORD_HEADER_BYTES);
    this.used += RECORD_HEADER_BYTES;
    return h;
  }
}

/** Bytes a record takes in a segment. */
export function recordBytes(count: number, zero: boolean, dataLength: number): number {
  return RECORD_HEADER_BYTES + (zero ? 0 : count * HASH_BYTES + dataLength);
}

function damaged(where: string, why: string): FerryError {
  return new FerryError("SEGMENT_DAMAGED", `log segment ${where} is damaged: ${why}`, {
    details: { segment: where },
  });
}

/**
 * The record at `at` of `buf`, which holds the segment's bytes from `base` on
 * (the segment's records take `total` bytes): the record (offsets in the
 * segment, hashes a view of `buf`) and its size, or undefined when its header
 * and hashes go past the end of `buf`. Its data need not be in `buf`.
 */
function recordAt(
  buf: Buffer,
  at: number,
  base: number,
  total: number,
  where: string,
): { record: SegmentRecord; size: number } | undefined {
  const pos = base + at;
  if (pos + RECORD_HEADER_BYTES > total) throw damaged(where, `record header cut at ${pos}`);
  if (buf.length - at < RECORD_HEADER_BYTES) return undefined;
  const h = buf.subarray(at, at + RECORD_HEADER_BYTES);
  if (h.readUInt32LE(0) !== RECORD_MAGIC) throw damaged(where, `no record at ${pos}`);
  const count = h.readUInt32LE(16);
  const dataLength = h.readUInt32LE(20);
  const zero = (h.readUInt8(24) & FLAG_ZERO) !== 0;
  const size = recordBytes(count, zero, dataLength);
  if (pos + size > total) throw damaged(where, `record at ${pos} cut short`);
  const hashesEnd = at + RECORD_HEADER_BYTES + (zero ? 0 : count * HASH_BYTES);
  if (hashesEnd > buf.length) return undefined;
  const hashes = zero ? Buffer.alloc(0) : buf.subarray(at + RECORD_HEADER_BYTES, hashesEnd);
  let crc = crc32(h.subarray(8));
  if (!zero) crc = crc32(hashes, crc);
  if (crc !== h.readUInt32LE(4)) throw damaged(where, `record at ${pos} fails its checksum`);
  const record = {
    firstBlock: h.readUIntLE(8, 6),
    count,
    zero,
    dataOffset: zero ? pos : pos + RECORD_HEADER_BYTES + count * HASH_BYTES,
    dataLength,
    hashes,
  };
  return { record, size };
}

/**
 * Parses records from the start of `buf` (all of a segment's records); their
 * hashes are views of `buf`. A record cut short or failing its checksum is
 * damage.
 */
export function scanRecords(buf: Buffer, where: string): SegmentRecord[] {
  const out: SegmentRecord[] = [];
  for (let at = 0; at < buf.length;) {
    const r = recordAt(buf, at, 0, buf.length, where);
    if (!r) throw damaged(where, `record at ${at} cut short`);
    out.push(r.record);
    at += r.size;
  }
  return out;
}

/** Bytes of an open segment read at a time when its records are scanned. */
export const SCAN_WINDOW = 16 * 1024 * 1024;

/**
 * Scans the first `length` bytes of a segment (an open segment at recovery,
 * up to a whole segment's size) a window at a time, reading only what holds
 * headers and hashes: memory stays at one window whatever the segment's size.
 * `onRecord` gets each record in order; its hashes are a view it must copy.
 */
export async function scanSegment(
  read: (range: ByteRange) => Promise<Buffer>,
  length: number,
  where: string,
  onRecord: (r: SegmentRecord) => void,
  window = SCAN_WINDOW,
): Promise<void> {
  let at = 0;
  while (at < length) {
    const buf = await read({ offset: at, length: Math.min(window, length - at) });
    let used = 0;
    while (used < buf.length && at + used < length) {
      const r = recordAt(buf, used, at, length, where);
      if (!r) break;
      onRecord(r.record);
      used += r.size; // may pass the window's end: the data is skipped, not read
    }
    // A header and hashes larger than a window: no frame makes one (a damaged count does).
    if (used === 0) throw damaged(where, `record at ${at} has more hashes than ${window} bytes`);
    at += used;
  }
}

/** One record's entry in a segment's index: 24 bytes, then its hashes. */
export function indexEntryBytes(r: { zero: boolean; count: number }): number {
  return INDEX_ENTRY_BYTES + (r.zero ? 0 : r.count * HASH_BYTES);
}

/** Writes one record's index entry at `at` of `into` (zero-filled there), returns its length. */
export function writeIndexEntry(
  into: Buffer,
  at: number,
  r: Omit<SegmentRecord, "hashes"> & { hashes: Uint8Array },
): number {
  into.writeUIntLE(r.firstBlock, at, 6);
  into.writeUInt8(r.zero ? FLAG_ZERO : 0, at + 6);
  into.writeUInt32LE(r.count, at + 8);
  into.writeUInt32LE(r.dataLength, at + 12);
  into.writeDoubleLE(r.dataOffset, at + 16);
  if (!r.zero) into.set(r.hashes.subarray(0, r.count * HASH_BYTES), at + INDEX_ENTRY_BYTES);
  return indexEntryBytes(r);
}

/** The footer of a segment whose index (of `recordCount` entries, CRC `indexCrc`) follows `recordsLength` bytes of records. */
export function encodeFooter(f: Footer): Buffer {
  const b = Buffer.alloc(FOOTER_BYTES);
  b.writeUInt32LE(FOOTER_MAGIC, 0);
  b.writeUInt32LE(1, 4);
  b.writeDoubleLE(f.recordsLength, 8);
  b.writeDoubleLE(f.indexLength, 16);
  b.writeUInt32LE(f.recordCount, 24);
  b.writeUInt32LE(f.blockSize, 28);
  b.writeUInt32LE(f.indexCrc, 32);
  b.writeUInt32LE(crc32(b.subarray(0, 44)), 44);
  return b;
}

/** The index and footer appended to seal a segment whose records take `recordsLength` bytes. */
export function encodeTrailer(
  records: readonly SegmentRecord[],
  recordsLength: number,
  blockSize: number,
): Buffer {
  let indexLength = 0;
  for (const r of records) indexLength += indexEntryBytes(r);
  const index = Buffer.alloc(indexLength);
  let at = 0;
  for (const r of records) at += writeIndexEntry(index, at, r);
  const footer = encodeFooter({
    recordsLength,
    indexLength,
    recordCount: records.length,
    blockSize,
    indexCrc: crc32(index),
  });
  return Buffer.concat([index, footer]);
}

export interface Footer {
  recordsLength: number;
  indexLength: number;
  recordCount: number;
  blockSize: number;
  indexCrc: number;
}

export function parseFooter(f: Buffer, where: string): Footer {
  if (f.length !== FOOTER_BYTES || f.readUInt32LE(0) !== FOOTER_MAGIC) throw damaged(where, "no footer");
  if (crc32(f.subarray(0, 44)) !== f.readUInt32LE(44)) throw damaged(where, "footer fails its checksum");
  return {
    recordsLength: f.readDoubleLE(8),
    indexLength: f.readDoubleLE(16),
    recordCount: f.readUInt32LE(24),
    blockSize: f.readUInt32LE(28),
    indexCrc: f.readUInt32LE(32),
  };
}

export function parseIndex(index: Buffer, footer: Footer, where: string): SegmentRecord[] {
  if (index.length !== footer.indexLength || crc32(index) !== footer.indexCrc) {
    throw damaged(where, "index fails its checksum");
  }
  const out: SegmentRecord[] = [];
  let at = 0;
  for (let i = 0; i < footer.recordCount; i++) {
    if (at + INDEX_ENTRY_BYTES > index.length) throw damaged(where, "index cut short");
    const zero = (index.readUInt8(at + 6) & FLAG_ZERO) !== 0;
    const count = index.readUInt32LE(at + 8);
    const hl = zero ? 0 : count * HASH_BYTES;
    out.push({
      firstBlock: index.readUIntLE(at, 6),
      zero,
      count,
      dataLength: index.readUInt32LE(at + 12),
      dataOffset: index.readDoubleLE(at + 16),
      hashes: index.subarray(at + INDEX_ENTRY_BYTES, at + INDEX_ENTRY_BYTES + hl),
    });
    at += INDEX_ENTRY_BYTES + hl;
  }
  return out;
}
