/**
 * A staging volume: the replica of one source disk, kept as a log of
 * immutable segments in the staging store (see docs/staging-store.md).
 *
 *   volumes/<sourceServerId>/<diskId>/
 *     meta.json              the head record: generation, geometry, durable point,
 *                            the committed segments (sealedThrough, open segment + length)
 *     seg/<from>-<to>        sealed log segments (store/segment.ts)
 *     seg/<n>-<n>.open       the open segment (local stores: appended, fdatasync'ed at flush)
 *     snap/<snapshotId>.json snapshot manifests: the segment sequence a snapshot covers
 *
 * A write appends a record to the open segment and points the in-memory head
 * index at it; a block whose hash equals the head's is not written again.
 * Flush makes the appended records durable, then commits the head record;
 * only then is anything acknowledged. A snapshot seals the open segment and
 * writes a manifest: constant time, whatever the disk size.
 *
 * Split by responsibility: volume-head.ts (records and names),
 * volume-recover.ts (opening after a crash), volume-read.ts (the read side and
 * the in-memory state), this file (the write path: records, flush, seal,
 * snapshot, compaction hooks).
 */
import { randomBytes } from "node:crypto";
import { FerryError } from "../lib/errors.ts";
import { HASH_BYTES } from "../wire/index.ts";
import { BlockMap, ZERO_OFFSET } from "./store/block-map.ts";
import type { ObjectStore } from "./store/object-store.ts";
import {
  RecordHeaders,
  encodeRecordHeader,
  recordBytes,
  segmentKey,
  type SegmentRef,
} from "./store/segment.ts";
import { SegmentIndexBuilder } from "./store/segment-index.ts";
import {
  blocksOf,
  emptyHead,
  parseHead,
  volumePrefix,
  type HeadRecord,
  type OpenSegment,
  type SnapshotManifest,
  type VolumeMeta,
  type VolumeOptions,
} from "./volume-head.ts";
import { VolumeReader } from "./volume-read.ts";
import { recoverVolume } from "./volume-recover.ts";
import { BatchedAppendable } from "./volume-append.ts";
import { WriterLease } from "./volume-lease.ts";

export {
  checkName,
  volumePrefix,
  type HeadRecord,
  type SnapshotManifest,
  type VolumeMeta,
  type VolumeOptions,
} from "./volume-head.ts";

const MiB = 1024 * 1024;
/** Read-only opens retried when a live writer sealed the open segment under them. */
const READ_ONLY_OPEN_ATTEMPTS = 5;

export class StagingVolume extends VolumeReader {
  private lock: Promise<unknown> = Promise.resolve();
  private readonly segmentBytes: number;
  private readonly segmentIndexBytes: number;
  private readonly headers = new RecordHeaders();
  private readonly bufferBytes: number;
  private closed = false;
  /** The writer's lease (writable opens): every store mutation is preceded by a fresh one. */
  private lease: WriterLease | undefined;

  private constructor(store: ObjectStore, prefix: string, head: HeadRecord, o: VolumeOptions) {
    super(store, prefix, head, o.readOnly ?? false);
    this.segmentBytes = o.segmentBytes ?? 1024 * MiB;
    this.segmentIndexBytes = o.segmentIndexBytes ?? 4 * MiB;
    this.bufferBytes = o.bufferBytes ?? 32 * MiB;
  }

  /** Opens a volume (creating an empty one), recovering from a crash at any point. */
  static async open(
    store: ObjectStore,
    sourceServerId: string,
    diskId: string,
    o: VolumeOptions = {},
  ): Promise<StagingVolume> {
    const prefix = volumePrefix(sourceServerId, diskId);
    for (let attempt = 1; ; attempt++) {
      const raw = await store.getMeta(`${prefix}meta.json`);
      const head: HeadRecord = raw ? parseHead(raw, prefix) : emptyHead(sourceServerId, diskId);
      const vol = new StagingVolume(store, prefix, head, o);
      try {
        const { readOnly, map, segments } = vol;
        if (!readOnly) {
          // Before recovery, which deletes: a released server's volume takes no writes at all.
          vol.lease = new WriterLease(store, prefix, sourceServerId, o.leaseTtlMs);
          await vol.lease.acquire();
        }
        vol.open = await recoverVolume({ store, prefix, readOnly, head, map, segments });
        if (vol.open?.app) vol.open.app = new BatchedAppendable(vol.open.app);
        return vol;
      } catch (err) {
        await vol.lease?.drop();
        // A reader beside a live replicator can see the open segment sealed (renamed)
        // between reading the head and reading the segment: read the head again.
        const code = err instanceof FerryError ? err.code : undefined;
        const raced = code === "OBJECT_NOT_FOUND" || code === "STAGING_DAMAGED";
        if (!vol.readOnly || !raced || attempt >= READ_ONLY_OPEN_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    }
  }

  /** Starts a new generation. Retained snapshots keep their segments; the head keeps its contents as the base when the geometry is unchanged. */
  async startGeneration(g: {
    generationId: string;
    diskSize: number;
    logicalBlockSize: number;
    hashBlockSize: number;
  }): Promise<void> {
    await this.exclusive(async () => {
      const same =
        this.head.diskSize === g.diskSize &&
        this.head.hashBlockSize === g.hashBlockSize &&
        this.head.logicalBlockSize === g.logicalBlockSize;
      if (!same) {
        await this.sealOpen();
        this.head.baseSeq = this.nextSeq();
      }
      this.head = {
        ...this.head,
        ...g,
        resumeOffset: 0,
        durableSeq: 0,
        initialSyncComplete: false,
        lastBarrierId: 0,
        lastConsistentAt: null,
      };
      if (!same) this.map = new BlockMap(blocksOf(this.head));
      await this.writeHead();
    });
  }

  /** Writes verified data and its per-block hashes; blocks identical to the head's are skipped. */
  async writeData(offset: number, data: Buffer, hashes: Buffer): Promise<void> {
    await (
      await this.appendData(offset, data, hashes)
    ).written;
  }

  /**
   * Appends verified data and its per-block hashes (blocks identical to the
   * head's are skipped) and resolves once the records are in the log, in call
   * order: reads see them, a later flush makes them durable. `written`
   * settles once the bytes reached the store; until then `data` must not be
   * reused. Callers may append the next data before it settles, so that
   * small records go out in one write.
   */
  async appendData(offset: number, data: Buffer, hashes: Buffer): Promise<{ written: Promise<void> }> {
    this.checkRange(offset, data.length);
    await this.lease?.ensure();
    const bs = this.head.hashBlockSize;
    const first = offset / bs;
    const n = Math.ceil(data.length / bs);
    const writes: Promise<void>[] = [];
    let runStart = -1;
    for (let i = 0; i <= n; i++) {
      const changed =
        i < n && !this.map.sameHash(first + i, hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      if (changed && runStart < 0) runStart = i;
      if (!changed && runStart >= 0) {
        const w = await this.appendRecord(
          first + runStart,
          i - runStart,
          false,
          hashes.subarray(runStart * HASH_BYTES, i * HASH_BYTES),
          data.subarray(runStart * bs, Math.min(i * bs, data.length)),
        );
        writes.push(w.written);
        runStart = -1;
      }
    }
    const written =
      writes.length === 0
        ? Promise.resolve()
        : writes.length === 1
          ? writes[0]!
          : Promise.all(writes).then(() => {});
    // The caller awaits it; until then a failure is reported there, not as an unhandled rejection.
    written.catch(() => {});
    return { written };
  }

  /** Makes a range read as zeros (only blocks not already zero get a record). */
  async writeZero(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length);
    await this.lease?.ensure();
    const bs = this.head.hashBlockSize;
    const first = offset / bs;
    const n = Math.ceil(length / bs);
    let runStart = -1;
    for (let i = 0; i <= n; i++) {
      const changed = i < n && !this.map.isZero(first + i);
      if (changed && runStart < 0) runStart = i;
      if (!changed && runStart >= 0) {
        const w = await this.appendRecord(
          first + runStart,
          i - runStart,
          true,
          Buffer.alloc(0),
          Buffer.alloc(0),
        );
        await w.written;
        runStart = -1;
      }
    }
  }

  /** Appends one record to the open segment; resolves once it is in the log, with the promise of its write (wrapped: an awaited promise would be flattened). */
  private async appendRecord(
    firstBlock: number,
    count: number,
    zero: boolean,
    hashes: Buffer,
    data: Buffer,
  ): Promise<{ written: Promise<void> }> {
    const o = await this.openSegment();
    const header = encodeRecordHeader(
      { firstBlock, count, zero, dataLength: data.length, hashes },
      this.headers.take(),
    );
    const at = o.size;
    const parts = zero ? [header] : [header, hashes, data];
    let written: Promise<void>;
    if (o.app) written = o.app.append(parts);
    else {
      o.parts.push(header, Buffer.from(hashes), ...(zero ? [] : [data]));
      written = Promise.resolve();
    }
    written.catch(() => {}); // reported where it is awaited
    // `hashes` is a view of the frame: the index and the map copy it, nothing keeps the view.
    const rec = {
      firstBlock,
      count,
      zero,
      dataOffset: zero ? at : at + header.length + hashes.length,
      dataLength: data.length,
      hashes,
    };
    o.index.add(rec);
    o.size += recordBytes(count, zero, data.length);
    this.map.applyRecord(o.seq, rec, this.head.hashBlockSize);
    return { written };
  }

  private async openSegment(): Promise<OpenSegment> {
    if (this.open) return this.open;
    if (this.readOnly)
      throw new FerryError("STORE_READ_ONLY", `volume ${this.prefix} is open read-only`, {
        kind: "internal",
      });
    const seq = this.nextSeq();
    const app = this.store.openAppendable
      ? new BatchedAppendable(
          await this.store.openAppendable(segmentKey(this.prefix, seq, seq), { truncateTo: 0 }),
        )
      : undefined;
    this.open = { seq, app, parts: [], size: 0, committed: 0, index: new SegmentIndexBuilder() };
    return this.open;
  }

  private nextSeq(): number {
    let max = Math.max(this.head.sealedThrough, this.head.baseSeq - 1, this.open?.seq ?? 0);
    for (const s of this.sealing.keys()) max = Math.max(max, s);
    for (const s of this.segments.keys()) max = Math.max(max, s);
    return max + 1;
  }

  /** Whether the session should flush now (a store without appendable objects buffers in memory). */
  wantsFlush(): boolean {
    return this.open !== undefined && this.open.app === undefined && this.open.size >= this.bufferBytes;
  }

  private checkRange(offset: number, length: number): void {
    const { hashBlockSize, diskSize } = this.head;
    if (offset % hashBlockSize !== 0 || offset + length > diskSize || length <= 0) {
      throw new FerryError(
        "BAD_RANGE",
        `range ${offset}+${length} is not block-aligned within the ${diskSize}-byte disk`,
        { details: { offset, length, diskSize, hashBlockSize } },
      );
    }
  }

  /** Makes everything written so far durable, then records `update` in the head record. */
  async flush(update: Partial<VolumeMeta> = {}): Promise<void> {
    await this.exclusive(async () => {
      const o = this.open;
      if (o?.app) {
        const length = o.size;
        await o.app.sync();
        o.committed = length;
        this.head.open = { seq: o.seq, length };
      } else if (o && o.size > 0) {
        this.open = undefined;
        await this.seal(o);
      }
      this.head = { ...this.head, ...update, updatedAt: new Date().toISOString() };
      await this.writeHead();
      if (this.open?.app && this.isFull(this.open)) await this.sealOpen();
    });
  }

  /** Whether the open segment is due to be sealed: by its size, or by the memory its index holds. */
  private isFull(o: OpenSegment): boolean {
    return o.size >= this.segmentBytes || o.index.length >= this.segmentIndexBytes;
  }

  /**
   * Takes a snapshot of everything written so far: seals the open segment and
   * writes a manifest. The caller (the session) calls it at a consistency
   * point, after the writes before it are durable.
   */
  async snapshot(o: {
    barrierId: number;
    reason: SnapshotManifest["reason"];
    createdAt?: Date;
    ruleIds?: string[];
  }): Promise<SnapshotManifest> {
    return this.exclusive(async () => {
      await this.sealOpen();
      const h = this.head;
      const createdAt = (o.createdAt ?? new Date()).toISOString();
      const manifest: SnapshotManifest = {
        snapshotId: `snap-${createdAt.replace(/[-:.TZ]/g, "").slice(0, 17)}-${randomBytes(4).toString("hex")}`,
        sourceServerId: h.sourceServerId,
        diskId: h.diskId,
        generationId: h.generationId,
        createdAt,
        barrierId: o.barrierId,
        reason: o.reason,
        diskSize: h.diskSize,
        logicalBlockSize: h.logicalBlockSize,
        blockSize: h.hashBlockSize,
        baseSeq: h.baseSeq,
        segmentSeq: h.sealedThrough,
        ...(o.ruleIds ? { ruleIds: o.ruleIds } : {}),
      };
      await this.store.putMeta(
        `${this.prefix}snap/${manifest.snapshotId}.json`,
        Buffer.from(JSON.stringify(manifest, null, 2)),
      );
      return manifest;
    });
  }

  /** Seals the open segment, if it has records (the lock is held). */
  private async sealOpen(): Promise<void> {
    const o = this.open;
    if (!o || o.size === 0) return;
    this.open = undefined;
    await this.seal(o);
  }

  /** Turns a detached open segment into a sealed one and commits it in the head record. */
  private async seal(o: OpenSegment): Promise<void> {
    this.sealing.set(o.seq, o);
    try {
      const key = segmentKey(this.prefix, o.seq, o.seq);
      const trailer = o.index.trailer(o.size, this.head.hashBlockSize);
      let trailerBytes = 0;
      for (const t of trailer) trailerBytes += t.length;
      if (o.app) {
        if (o.committed !== o.size) {
          // Commit exactly what the sealed segment will hold, so recovery never finds more.
          await o.app.sync();
          this.head.open = { seq: o.seq, length: o.size };
          await this.writeHead();
        }
        await o.app.append(trailer);
        await o.app.seal();
        await o.app.close();
      } else {
        await this.store.put(key, [...o.parts, ...trailer]);
      }
      this.segments.set(o.seq, { key, from: o.seq, to: o.seq, size: o.size + trailerBytes });
      this.head.sealedThrough = Math.max(this.head.sealedThrough, o.seq);
      this.head.open = null;
      await this.writeHead();
    } finally {
      this.sealing.delete(o.seq);
    }
  }

  private async writeHead(): Promise<void> {
    await this.store.putMeta(`${this.prefix}meta.json`, Buffer.from(JSON.stringify(this.head, null, 2)));
  }

  /** Runs `fn` with no flush, seal, snapshot or compaction beside it (writes may continue). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = async () => {
      await this.lease?.ensure();
      return fn();
    };
    const run = this.lock.then(guarded, guarded);
    this.lock = run.catch(() => {});
    return run;
  }

  /** Replaces segments after a compaction merged them (the lock is held by the caller). */
  replaceSegments(
    merged: SegmentRef,
    removed: readonly SegmentRef[],
    moved: (b: number) => number | undefined,
  ): void {
    for (const r of removed) this.segments.delete(r.to);
    this.segments.set(merged.to, merged);
    for (let b = 0; b < this.map.blocks; b++) {
      const seq = this.map.seg[b]!;
      if (!removed.some((r) => r.to === seq)) continue;
      const off = moved(b);
      if (off === undefined)
        throw new FerryError("INTERNAL", `compaction lost block ${b} of ${this.prefix}`, {
          kind: "internal",
        });
      this.map.seg[b] = merged.to;
      if (this.map.off[b] !== ZERO_OFFSET) this.map.off[b] = off;
    }
  }

  forgetSegment(ref: SegmentRef): void {
    this.segments.delete(ref.to);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.catch(() => {});
    await this.open?.app?.close();
    await this.lease?.drop();
  }
}
