/**
 * The open segment's index, kept as the bytes its trailer will hold (24 bytes
 * and the hashes per record, store/segment.ts) rather than one object and one
 * hash Buffer per record. Continuous replication appends a record per 4 KiB
 * write: as objects, each record kept its 32-byte hash copy in a slice of
 * Node's 64 KiB buffer pool, which then stayed alive for the segment's life
 * (~700 bytes held per record: ~170 MiB for a 1 GiB segment of 4 KiB records,
 * measured with bench/small-frames.ts and a heap snapshot). Encoded,
 * a 4 KiB record costs 56 bytes, in chunks of at most 1 MiB.
 */
import { crc32 } from "node:zlib";
import { encodeFooter, indexEntryBytes, writeIndexEntry, type SegmentRecord } from "./segment.ts";

const FIRST_CHUNK = 64 * 1024;
const MAX_CHUNK = 1024 * 1024;

/** A record as appended: its hashes may be a view of the frame (they are copied). */
export type IndexEntry = Omit<SegmentRecord, "hashes"> & { hashes: Uint8Array };

export class SegmentIndexBuilder {
  private readonly chunks: Buffer[] = [];
  /** Bytes used in the last chunk. */
  private used = 0;
  private crc = 0;
  private count = 0;
  private bytes = 0;

  /** Records in the index. */
  get recordCount(): number {
    return this.count;
  }

  /** Bytes of the encoded index (without the footer). */
  get length(): number {
    return this.bytes;
  }

  add(r: IndexEntry): void {
    const need = indexEntryBytes(r);
    let chunk = this.chunks.at(-1);
    if (!chunk || chunk.length - this.used < need) {
      // The rest of a full chunk stays unused: an entry is never split.
      const size = Math.max(need, Math.min(MAX_CHUNK, chunk ? chunk.length * 2 : FIRST_CHUNK));
      if (chunk) this.chunks[this.chunks.length - 1] = chunk.subarray(0, this.used);
      chunk = Buffer.alloc(size);
      this.chunks.push(chunk);
      this.used = 0;
    }
    const at = this.used;
    this.used += writeIndexEntry(chunk, at, r);
    this.crc = crc32(chunk.subarray(at, this.used), this.crc);
    this.count++;
    this.bytes += need;
  }

  /** The trailer that seals a segment of `recordsLength` bytes of records: the index, then the footer. */
  trailer(recordsLength: number, blockSize: number): Buffer[] {
    const last = this.chunks.length - 1;
    const index = this.chunks.map((c, i) => (i === last ? c.subarray(0, this.used) : c));
    const footer = encodeFooter({
      recordsLength,
      indexLength: this.bytes,
      recordCount: this.count,
      blockSize,
      indexCrc: this.crc,
    });
    return [...index, footer];
  }
}
