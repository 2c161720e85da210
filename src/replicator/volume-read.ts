/**
 * The read side of a staging volume: the state a volume keeps in memory (the
 * head record, the head index, the sealed segments, the open segment and the
 * ones being sealed) and reads of the head's blocks from wherever their newest
 * record is. Reads return bytes as recorded; callers that need verified data
 * check them against `readHashes` (or read a snapshot, which does).
 * `StagingVolume` (volume.ts) adds the write path.
 */
import { FerryError } from "../lib/errors.ts";
import { HASH_BYTES } from "../wire/index.ts";
import { BlockMap } from "./store/block-map.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { segmentKey, type SegmentRef } from "./store/segment.ts";
import { blocksOf, type HeadRecord, type OpenSegment, type VolumeMeta } from "./volume-head.ts";

export abstract class VolumeReader {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly readOnly: boolean;
  protected head: HeadRecord;
  /** The head index: where each block's newest record is. */
  map: BlockMap;
  /** Sealed segments the head or a snapshot may use, by `to`. */
  readonly segments = new Map<number, SegmentRef>();
  protected open: OpenSegment | undefined;
  /** Segments detached from writing and being sealed (still readable). */
  protected readonly sealing = new Map<number, OpenSegment>();

  protected constructor(store: ObjectStore, prefix: string, head: HeadRecord, readOnly: boolean) {
    this.store = store;
    this.prefix = prefix;
    this.head = head;
    this.readOnly = readOnly;
    this.map = new BlockMap(blocksOf(head));
  }

  get meta(): VolumeMeta {
    return this.head;
  }

  get baseSeq(): number {
    return this.head.baseSeq;
  }

  get sealedThrough(): number {
    return this.head.sealedThrough;
  }

  /** The bytes of one block of the head as recorded (not verified). */
  async readBlock(b: number): Promise<Buffer> {
    const bs = this.head.hashBlockSize;
    const length = Math.min(bs, this.head.diskSize - b * bs);
    if (this.map.isZero(b)) return Buffer.alloc(length);
    return this.readSpan(b, this.map.seg[b]!, this.map.off[b]!, length);
  }

  /** `length` bytes at `offset` of segment `seq` (where block b's data starts). */
  private async readSpan(b: number, seq: number, offset: number, length: number): Promise<Buffer> {
    const range = { offset, length };
    const live = this.open?.seq === seq ? this.open : this.sealing.get(seq);
    if (live?.app) return live.app.read(range);
    if (live) return readParts(live.parts, range);
    const ref = this.segments.get(seq);
    if (!ref && this.head.open?.seq === seq && this.store.readAppendable) {
      const key = segmentKey(this.prefix, seq, seq);
      try {
        return await this.store.readAppendable(key, range);
      } catch (err) {
        if (!(err instanceof FerryError) || err.code !== "OBJECT_NOT_FOUND") throw err;
        return this.store.get(key, range); // sealed meanwhile by its owner
      }
    }
    if (!ref)
      throw new FerryError(
        "STAGING_DAMAGED",
        `block ${b} of ${this.prefix} is in segment ${seq}, which is missing`,
      );
    return this.store.get(ref.key, range);
  }

  /** The head's bytes at [offset, offset+length), as recorded (not verified); one read per run of adjacent blocks. */
  async readRange(offset: number, length: number): Promise<Buffer> {
    const bs = this.head.hashBlockSize;
    const end = Math.min(offset + length, this.head.diskSize);
    const first = Math.floor(offset / bs);
    const last = Math.ceil(end / bs);
    const out = Buffer.alloc((last - first) * bs);
    let b = first;
    while (b < last) {
      if (this.map.isZero(b)) {
        b++;
        continue;
      }
      const seq = this.map.seg[b]!;
      const start = this.map.off[b]!;
      let n = 1;
      while (b + n < last && this.map.seg[b + n] === seq && this.map.off[b + n] === start + n * bs) n++;
      const bytes = Math.min(n * bs, this.head.diskSize - b * bs);
      const data = await this.readSpan(b, seq, start, bytes);
      data.copy(out, (b - first) * bs);
      b += n;
    }
    const skip = offset - first * bs;
    return out.subarray(skip, skip + (end - offset));
  }

  /** The recorded hashes of `count` blocks from block index `first`. */
  async readHashes(first: number, count: number): Promise<Buffer> {
    return Buffer.from(this.map.hash.subarray(first * HASH_BYTES, (first + count) * HASH_BYTES));
  }

  /** Where a block's stored bytes are: the object key (sealed or still open) and the offset in it; undefined for zeros. */
  locateBlock(b: number): { key: string; offset: number; sealed: boolean } | undefined {
    if (this.map.isZero(b)) return undefined;
    const seq = this.map.seg[b]!;
    const ref = this.segments.get(seq);
    return {
      key: ref?.key ?? segmentKey(this.prefix, seq, seq),
      offset: this.map.off[b]!,
      sealed: ref !== undefined,
    };
  }

  /** Whether a block's newest record is zeros. */
  isZeroBlock(b: number): boolean {
    return this.map.isZero(b);
  }

  /** Sealed segments, oldest first. */
  sealedSegments(): SegmentRef[] {
    return [...this.segments.values()].sort((a, b) => a.to - b.to);
  }
}

function readParts(parts: readonly Buffer[], range: { offset: number; length: number }): Buffer {
  const out = Buffer.alloc(range.length);
  let pos = 0;
  for (const p of parts) {
    const start = Math.max(range.offset, pos);
    const end = Math.min(range.offset + range.length, pos + p.length);
    if (start < end) p.copy(out, start - range.offset, start - pos, end - pos);
    pos += p.length;
  }
  return out;
}
