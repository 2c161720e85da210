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
 */
import { randomBytes } from "node:crypto";
import { FerryError } from "../lib/errors.ts";
import { HASH_BYTES } from "../wire/index.ts";
import { BlockMap, ZERO_OFFSET, readSegmentIndex } from "./store/block-map.ts";
import type { AppendableObject, ObjectStore } from "./store/object-store.ts";
import {
  encodeRecordHeader,
  encodeTrailer,
  parseSegmentKey,
  recordBytes,
  scanRecords,
  segmentKey,
  type SegmentRecord,
  type SegmentRef,
} from "./store/segment.ts";

export interface VolumeMeta {
  sourceServerId: string;
  diskId: string;
  /** Hex of the 16-byte generation id. */
  generationId: string;
  diskSize: number;
  logicalBlockSize: number;
  hashBlockSize: number;
  /** Bytes from offset 0 durable in this generation's initial sync. */
  resumeOffset: number;
  /** Highest durable sequence number. */
  durableSeq: number;
  initialSyncComplete: boolean;
  lastBarrierId: number;
  lastConsistentAt: string | null;
  updatedAt: string;
}

/** What meta.json holds: the volume's metadata and its committed segments. */
export interface HeadRecord extends VolumeMeta {
  format: 2;
  /** Segments below this sequence belong to an older disk geometry (kept only for snapshots). */
  baseSeq: number;
  /** Highest sealed segment sequence the head covers. */
  sealedThrough: number;
  /** The open (appendable) segment and its durable length. */
  open: { seq: number; length: number } | null;
}

/** A snapshot's manifest: the segments ≤ segmentSeq (from baseSeq) are its contents. */
export interface SnapshotManifest {
  snapshotId: string;
  sourceServerId: string;
  diskId: string;
  generationId: string;
  createdAt: string;
  barrierId: number;
  reason: "policy" | "requested" | "initial-sync";
  diskSize: number;
  logicalBlockSize: number;
  blockSize: number;
  baseSeq: number;
  segmentSeq: number;
  /** Point-in-time rules that wanted this snapshot (it expires when all of theirs have). */
  ruleIds?: string[];
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Refuses names that could escape the data directory or the store prefix. */
export function checkName(kind: string, value: string): string {
  if (!ID.test(value) || value.includes("..")) {
    throw new FerryError(
      "INVALID_NAME",
      `invalid ${kind} "${value}": use letters, digits, ".", "_" and "-"`,
      {
        details: { [kind]: value },
      },
    );
  }
  return value;
}

/** The store prefix of a volume ("volumes/<server>/<disk>/"). */
export function volumePrefix(sourceServerId: string, diskId: string): string {
  return `volumes/${checkName("sourceServerId", sourceServerId)}/${checkName("diskId", diskId)}/`;
}

export interface VolumeOptions {
  /** Open to read only: no recovery writes, no deletes (another process owns the volume). @default false */
  readOnly?: boolean;
  /** Seal the open segment once it holds this many bytes. @default 1 GiB */
  segmentBytes?: number;
  /** Without appendable objects (S3): flush when this much is buffered. @default 32 MiB */
  bufferBytes?: number;
}

interface OpenSegment {
  seq: number;
  app: AppendableObject | undefined;
  /** Buffered parts when the store has no appendable objects. */
  parts: Buffer[];
  size: number;
  /** Size recorded in the head record. */
  committed: number;
  records: SegmentRecord[];
}

const MiB = 1024 * 1024;
/** Read-only opens retried when a live writer sealed the open segment under them. */
const READ_ONLY_OPEN_ATTEMPTS = 5;

export class StagingVolume {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly readOnly: boolean;
  private head: HeadRecord;
  /** The head index: where each block's newest record is. */
  map: BlockMap;
  /** Sealed segments the head or a snapshot may use, by `to`. */
  readonly segments = new Map<number, SegmentRef>();
  private open: OpenSegment | undefined;
  /** Segments detached from writing and being sealed (still readable). */
  private readonly sealing = new Map<number, OpenSegment>();
  private lock: Promise<unknown> = Promise.resolve();
  private readonly segmentBytes: number;
  private readonly bufferBytes: number;
  private closed = false;

  private constructor(store: ObjectStore, prefix: string, head: HeadRecord, o: VolumeOptions) {
    this.store = store;
    this.prefix = prefix;
    this.head = head;
    this.readOnly = o.readOnly ?? false;
    this.segmentBytes = o.segmentBytes ?? 1024 * MiB;
    this.bufferBytes = o.bufferBytes ?? 32 * MiB;
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
        await vol.recover();
        return vol;
      } catch (err) {
        // A reader beside a live replicator can see the open segment sealed (renamed)
        // between reading the head and reading the segment: read the head again.
        const code = err instanceof FerryError ? err.code : undefined;
        const raced = code === "OBJECT_NOT_FOUND" || code === "STAGING_DAMAGED";
        if (!vol.readOnly || !raced || attempt >= READ_ONLY_OPEN_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    }
  }

  private async recover(): Promise<void> {
    const head = this.head;
    const listed = (await this.store.list(`${this.prefix}seg/`))
      .map((o) => parseSegmentKey(this.prefix, o.key, o.size))
      .filter((r): r is SegmentRef => r !== undefined);
    // A merged segment supersedes the segments inside its range (their deletion may not have happened).
    const superseded = listed.filter((a) =>
      listed.some((b) => b !== a && b.from <= a.from && a.to <= b.to && b.to - b.from > a.to - a.from),
    );
    const openSeq = head.open?.seq;
    const sealedOpen = listed.find((r) => r.from === openSeq && r.to === openSeq && !superseded.includes(r));
    const committed = sealedOpen ? openSeq! : head.sealedThrough;
    const stale: SegmentRef[] = [...superseded];
    for (const r of listed) {
      if (superseded.includes(r)) continue;
      if (r.to > committed)
        stale.push(r); // written after the last commit: never acknowledged
      else this.segments.set(r.to, r);
    }
    const appendables = this.store.listAppendable
      ? await this.store.listAppendable(`${this.prefix}seg/`)
      : [];
    if (!this.readOnly) {
      for (const r of stale) await this.store.delete(r.key);
      for (const key of appendables) {
        const seq = parseSegmentKey(this.prefix, key, 0)?.to;
        if (seq !== openSeq || sealedOpen) await this.store.deleteAppendable?.(key);
      }
    }
    if (sealedOpen) {
      head.sealedThrough = sealedOpen.to;
      head.open = null;
    }
    for (const r of [...this.segments.values()].sort((a, b) => a.to - b.to)) {
      if (r.from < head.baseSeq) continue;
      this.map.apply(r.to, await readSegmentIndex(this.store, r), head.hashBlockSize);
    }
    if (head.open && head.open.length > 0) {
      const key = segmentKey(this.prefix, head.open.seq, head.open.seq);
      const range = { offset: 0, length: head.open.length };
      let app: AppendableObject | undefined;
      let bytes: Buffer;
      if (!appendables.includes(key)) {
        throw new FerryError(
          "STAGING_DAMAGED",
          `the open segment ${key} of ${this.store.location} is missing but the head record says ${head.open.length} bytes of it are durable`,
          { details: { key } },
        );
      }
      if (this.readOnly) {
        bytes = await this.store.readAppendable!(key, range);
      } else {
        app = await this.store.openAppendable!(key, { truncateTo: head.open.length });
        bytes = await app.read(range);
      }
      const records = scanRecords(bytes, key);
      this.map.apply(head.open.seq, records, head.hashBlockSize);
      // Read-only: its blocks are read from the store (readAppendable), never written.
      if (app)
        this.open = {
          seq: head.open.seq,
          app,
          parts: [],
          size: head.open.length,
          committed: head.open.length,
          records,
        };
    } else if (head.open && !this.readOnly) {
      head.open = null;
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
    this.checkRange(offset, data.length);
    const bs = this.head.hashBlockSize;
    const first = offset / bs;
    const n = Math.ceil(data.length / bs);
    let runStart = -1;
    for (let i = 0; i <= n; i++) {
      const changed =
        i < n && !this.map.sameHash(first + i, hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      if (changed && runStart < 0) runStart = i;
      if (!changed && runStart >= 0) {
        await this.appendRecord(
          first + runStart,
          i - runStart,
          false,
          hashes.subarray(runStart * HASH_BYTES, i * HASH_BYTES),
          data.subarray(runStart * bs, Math.min(i * bs, data.length)),
        );
        runStart = -1;
      }
    }
  }

  /** Makes a range read as zeros (only blocks not already zero get a record). */
  async writeZero(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length);
    const bs = this.head.hashBlockSize;
    const first = offset / bs;
    const n = Math.ceil(length / bs);
    let runStart = -1;
    for (let i = 0; i <= n; i++) {
      const changed = i < n && !this.map.isZero(first + i);
      if (changed && runStart < 0) runStart = i;
      if (!changed && runStart >= 0) {
        await this.appendRecord(first + runStart, i - runStart, true, Buffer.alloc(0), Buffer.alloc(0));
        runStart = -1;
      }
    }
  }

  private async appendRecord(
    firstBlock: number,
    count: number,
    zero: boolean,
    hashes: Buffer,
    data: Buffer,
  ): Promise<void> {
    const o = await this.openSegment();
    const header = encodeRecordHeader({ firstBlock, count, zero, dataLength: data.length, hashes });
    const at = o.size;
    const parts = zero ? [header] : [header, hashes, data];
    if (o.app) await o.app.append(parts);
    else o.parts.push(header, Buffer.from(hashes), ...(zero ? [] : [data]));
    const rec: SegmentRecord = {
      firstBlock,
      count,
      zero,
      dataOffset: zero ? at : at + header.length + hashes.length,
      dataLength: data.length,
      hashes: Buffer.from(hashes),
    };
    o.records.push(rec);
    o.size += recordBytes(count, zero, data.length);
    this.map.apply(o.seq, [rec], this.head.hashBlockSize);
  }

  private async openSegment(): Promise<OpenSegment> {
    if (this.open) return this.open;
    if (this.readOnly)
      throw new FerryError("STORE_READ_ONLY", `volume ${this.prefix} is open read-only`, {
        kind: "internal",
      });
    const seq = this.nextSeq();
    const app = this.store.openAppendable
      ? await this.store.openAppendable(segmentKey(this.prefix, seq, seq), { truncateTo: 0 })
      : undefined;
    this.open = { seq, app, parts: [], size: 0, committed: 0, records: [] };
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
      if (this.open?.app && this.open.size >= this.segmentBytes) await this.sealOpen();
    });
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
      const trailer = encodeTrailer(o.records, o.size, this.head.hashBlockSize);
      if (o.app) {
        if (o.committed !== o.size) {
          // Commit exactly what the sealed segment will hold, so recovery never finds more.
          await o.app.sync();
          this.head.open = { seq: o.seq, length: o.size };
          await this.writeHead();
        }
        await o.app.append([trailer]);
        await o.app.seal();
        await o.app.close();
      } else {
        await this.store.put(key, [...o.parts, trailer]);
      }
      this.segments.set(o.seq, { key, from: o.seq, to: o.seq, size: o.size + trailer.length });
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
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => {});
    return run;
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
  }
}

function blocksOf(h: VolumeMeta): number {
  return h.diskSize > 0 ? Math.ceil(h.diskSize / h.hashBlockSize) : 0;
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

function emptyHead(sourceServerId: string, diskId: string): HeadRecord {
  return {
    format: 2,
    sourceServerId,
    diskId,
    generationId: "",
    diskSize: 0,
    logicalBlockSize: 512,
    hashBlockSize: 65536,
    resumeOffset: 0,
    durableSeq: 0,
    initialSyncComplete: false,
    lastBarrierId: 0,
    lastConsistentAt: null,
    updatedAt: new Date().toISOString(),
    baseSeq: 1,
    sealedThrough: 0,
    open: null,
  };
}

function parseHead(raw: Buffer, prefix: string): HeadRecord {
  try {
    const h = JSON.parse(raw.toString("utf8")) as HeadRecord;
    if (h.format !== 2) throw new Error(`format ${String(h.format)} is not 2`);
    return h;
  } catch (err) {
    throw new FerryError(
      "STAGING_META_DAMAGED",
      `cannot read ${prefix}meta.json: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
