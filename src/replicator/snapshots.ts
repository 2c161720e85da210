/**
 * The staging store's snapshot catalog (src/model/staging.ts): lists the
 * snapshot manifests of a source server's disks and opens a snapshot as a
 * reader that checks every block against its recorded BLAKE3 hash.
 *
 * Readers never lose segments under them: in this process a reader holds a
 * lease on its volume, and compaction leaves a leased volume alone. Another
 * process (a launch reading the store directly) may find a segment merged
 * away: the merged object holds the same records, so the reader lists the
 * segments again and retries (once per read) before failing.
 */
import { FerryError } from "../lib/errors.ts";
import type { SnapshotCatalog, SnapshotExtent, SnapshotInfo, SnapshotReader } from "../model/staging.ts";
import { HASH_BYTES, dataRuns } from "../wire/index.ts";
import { sharedVerifyPool } from "./verify-pool.ts";
import { openStore, type StoreUrlOptions } from "./store/index.ts";
import type { BlockMap } from "./store/block-map.ts";
import type { ObjectReader, ObjectStore } from "./store/object-store.ts";
import { IndexCache, buildView, listSegments } from "./store/views.ts";
import { checkName, volumePrefix, type SnapshotManifest } from "./volume.ts";

/** In-process leases: volumes with a reader open (compaction waits for them). */
const leases = new WeakMap<ObjectStore, Map<string, number>>();

export function leaseVolume(store: ObjectStore, prefix: string): () => void {
  let m = leases.get(store);
  if (!m) leases.set(store, (m = new Map()));
  m.set(prefix, (m.get(prefix) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (m.get(prefix) ?? 1) - 1;
    if (n <= 0) m.delete(prefix);
    else m.set(prefix, n);
  };
}

export function volumeLeased(store: ObjectStore, prefix: string): boolean {
  return (leases.get(store)?.get(prefix) ?? 0) > 0;
}

export function manifestKey(prefix: string, snapshotId: string): string {
  return `${prefix}snap/${checkName("snapshotId", snapshotId)}.json`;
}

/** The manifests of one volume, oldest first. */
export async function listManifests(store: ObjectStore, prefix: string): Promise<SnapshotManifest[]> {
  const out: SnapshotManifest[] = [];
  for (const o of await store.list(`${prefix}snap/`)) {
    if (!o.key.endsWith(".json")) continue;
    const raw = await store.getMeta(o.key);
    if (!raw) continue; // expired meanwhile
    try {
      out.push(JSON.parse(raw.toString("utf8")) as SnapshotManifest);
    } catch (err) {
      throw new FerryError(
        "SNAPSHOT_DAMAGED",
        `snapshot manifest ${o.key} in ${store.location} is not JSON`,
        {
          cause: err,
          details: { key: o.key },
        },
      );
    }
  }
  return out.sort(byCreated);
}

function byCreated(
  a: { createdAt: string; snapshotId: string },
  b: { createdAt: string; snapshotId: string },
): number {
  return a.createdAt < b.createdAt
    ? -1
    : a.createdAt > b.createdAt
      ? 1
      : a.snapshotId < b.snapshotId
        ? -1
        : 1;
}

/** The disks of a source server that have a volume in the store. */
export async function listDisks(store: ObjectStore, sourceServerId: string): Promise<string[]> {
  const prefix = `volumes/${checkName("sourceServerId", sourceServerId)}/`;
  const disks = new Set<string>();
  for (const o of await store.list(prefix)) {
    const m = /^([^/]+)\/meta\.json$/.exec(o.key.slice(prefix.length));
    if (m) disks.add(m[1]!);
  }
  return [...disks].sort();
}

export function snapshotInfo(m: SnapshotManifest): SnapshotInfo {
  return {
    snapshotId: m.snapshotId,
    sourceServerId: m.sourceServerId,
    diskId: m.diskId,
    createdAt: m.createdAt,
    barrierId: m.barrierId,
    diskSize: m.diskSize,
    logicalBlockSize: m.logicalBlockSize,
    blockSize: m.blockSize,
    reason: m.reason,
  };
}

export interface StoreCatalogOptions {
  /** Takes snapshots at the next consistency point (a catalog attached to a running replicator). */
  takeSnapshot?: SnapshotCatalog["takeSnapshot"];
}

/** A SnapshotCatalog over a staging store. */
export class StoreCatalog implements SnapshotCatalog {
  readonly store: ObjectStore;
  takeSnapshot?: SnapshotCatalog["takeSnapshot"];

  constructor(store: ObjectStore, o: StoreCatalogOptions = {}) {
    this.store = store;
    if (o.takeSnapshot) this.takeSnapshot = o.takeSnapshot;
  }

  async list(sourceServerId: string): Promise<SnapshotInfo[]> {
    const all: SnapshotManifest[] = [];
    for (const diskId of await listDisks(this.store, sourceServerId)) {
      all.push(...(await listManifests(this.store, volumePrefix(sourceServerId, diskId))));
    }
    return all.sort(byCreated).map(snapshotInfo);
  }

  async manifest(sourceServerId: string, diskId: string, snapshotId: string): Promise<SnapshotManifest> {
    const key = manifestKey(volumePrefix(sourceServerId, diskId), snapshotId);
    const raw = await this.store.getMeta(key);
    if (!raw) {
      throw new FerryError(
        "SNAPSHOT_NOT_FOUND",
        `snapshot ${snapshotId} of ${sourceServerId}/${diskId} is not in ${this.store.location} (expired, or never taken): list them with ferry snapshot list`,
        { details: { sourceServerId, diskId, snapshotId } },
      );
    }
    return JSON.parse(raw.toString("utf8")) as SnapshotManifest;
  }

  async open(sourceServerId: string, diskId: string, snapshotId: string): Promise<StoreSnapshotReader> {
    const m = await this.manifest(sourceServerId, diskId, snapshotId);
    const prefix = volumePrefix(sourceServerId, diskId);
    const release = leaseVolume(this.store, prefix);
    try {
      const reader = new StoreSnapshotReader(this.store, prefix, m, release);
      await reader.load();
      return reader;
    } catch (err) {
      release();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

const MAX_DATA_EXTENT = 8 * 1024 * 1024;

export class StoreSnapshotReader implements SnapshotReader {
  readonly info: SnapshotInfo;
  readonly manifest: SnapshotManifest;
  private readonly store: ObjectStore;
  private readonly prefix: string;
  private readonly release: () => void;
  private map!: BlockMap;
  private keys = new Map<number, string>();
  /** Open segment readers (stores with `openReader`), by key. */
  private readonly readers = new Map<string, Promise<ObjectReader>>();

  constructor(store: ObjectStore, prefix: string, m: SnapshotManifest, release: () => void) {
    this.store = store;
    this.prefix = prefix;
    this.manifest = m;
    this.info = snapshotInfo(m);
    this.release = release;
  }

  /** (Re)builds the block map from the segments the snapshot covers. */
  async load(): Promise<void> {
    await this.closeReaders();
    const m = this.manifest;
    const segments = await listSegments(this.store, this.prefix);
    try {
      this.map = await buildView(
        segments,
        { baseSeq: m.baseSeq, segmentSeq: m.segmentSeq },
        { diskSize: m.diskSize, blockSize: m.blockSize },
        new IndexCache(this.store),
      );
    } catch (err) {
      throw damagedError(this.info, undefined, err);
    }
    this.keys = new Map(segments.map((r) => [r.to, r.key]));
    // Listed first, then checked: if the manifest still exists now, no segment it needs was deleted before the listing.
    if (!(await this.store.getMeta(manifestKey(this.prefix, m.snapshotId)))) {
      throw new FerryError(
        "SNAPSHOT_NOT_FOUND",
        `snapshot ${m.snapshotId} of ${m.sourceServerId}/${m.diskId} expired while it was being read`,
        { details: { snapshotId: m.snapshotId } },
      );
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const { diskSize, blockSize } = this.manifest;
    if (offset < 0 || length < 0 || offset + length > diskSize) {
      throw new FerryError("BAD_RANGE", `range ${offset}+${length} is outside the ${diskSize}-byte snapshot`);
    }
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / blockSize);
    const last = Math.ceil((offset + length) / blockSize);
    let blocks: Buffer;
    for (let attempt = 0; ; attempt++) {
      try {
        blocks = await this.readBlocks(first, last);
        break;
      } catch (err) {
        // A segment merged away by another process: its records are in the merged object.
        if (attempt === 0 && err instanceof FerryError && err.code === "OBJECT_NOT_FOUND") {
          await this.load();
          continue;
        }
        throw err instanceof FerryError && err.code === "SNAPSHOT_DAMAGED"
          ? err
          : damagedError(this.info, offset, err);
      }
    }
    const skip = offset - first * blockSize;
    return blocks.subarray(skip, skip + length);
  }

  /** Blocks [first, last) verified; one ranged read per run of adjacent blocks, no copy when the range is one run. */
  private async readBlocks(first: number, last: number): Promise<Buffer> {
    const { diskSize, blockSize } = this.manifest;
    const map = this.map;
    const end = Math.min(last * blockSize, diskSize);
    const runs: { b: number; data: Buffer }[] = [];
    let b = first;
    while (b < last) {
      if (map.isZero(b)) {
        b++;
        continue;
      }
      const seq = map.seg[b]!;
      const start = map.off[b]!;
      let n = 1;
      while (b + n < last && map.seg[b + n] === seq && map.off[b + n] === start + n * blockSize) n++;
      const bytes = Math.min(n * blockSize, diskSize - b * blockSize);
      const key = this.keys.get(seq);
      if (!key) throw new FerryError("OBJECT_NOT_FOUND", `segment ${seq} of ${this.prefix} is not listed`);
      const data = await this.fetch(key, { offset: start, length: bytes });
      const recorded = Buffer.from(map.hash.buffer, map.hash.byteOffset + b * HASH_BYTES, n * HASH_BYTES);
      const bad = await sharedVerifyPool().firstBadBlock(data, blockSize, recorded);
      if (bad >= 0) throw damagedError(this.info, (b + bad) * blockSize, undefined, key);
      runs.push({ b, data });
      b += n;
    }
    const only = runs[0];
    if (runs.length === 1 && only!.b === first && only!.data.length === end - first * blockSize)
      return only!.data;
    const out = Buffer.alloc((last - first) * blockSize);
    for (const r of runs) r.data.copy(out, (r.b - first) * blockSize);
    return out;
  }

  /** A range of a segment: direct reads through a reader kept open per segment where the store has them. */
  private async fetch(key: string, range: { offset: number; length: number }): Promise<Buffer> {
    const r = await this.segmentReader(key);
    if (!r) return this.store.get(key, range);
    const data = await r.read(range);
    if (data.length !== range.length) throw shortSegment(key, range);
    return data;
  }

  private segmentReader(key: string): Promise<ObjectReader> | undefined {
    if (!this.store.openReader) return undefined;
    let r = this.readers.get(key);
    if (!r) {
      r = this.store.openReader(key);
      r.catch(() => this.readers.delete(key));
      this.readers.set(key, r);
    }
    return r;
  }

  /**
   * `read` without a copy or an allocation when the range is one run of
   * stored blocks and the store reads directly: the bytes stay in the
   * store's reused buffer, are verified in place (on a worker thread), and
   * are lent to `use`.
   */
  async readWith<T>(offset: number, length: number, use: (bytes: Buffer) => Promise<T>): Promise<T> {
    const { blockSize } = this.manifest;
    return this.lendRun(
      offset,
      length,
      async ({ data, first, recorded, key, lent }) => {
        const bad = await sharedVerifyPool().firstBadBlock(data, blockSize, recorded);
        if (bad >= 0) throw damagedError(this.info, (first + bad) * blockSize, undefined, key);
        lent();
        const skip = offset - first * blockSize;
        return use(data.subarray(skip, skip + length));
      },
      async () => use(await this.read(offset, length)),
    );
  }

  /**
   * Reads the verified bytes at [offset, offset+length) into `target`,
   * leaving blocks of zeros unwritten, and resolves with the ranges written
   * (SnapshotReader.readInto). When the range is one block-aligned run of
   * stored blocks that the store reads directly and `target` is shared
   * memory, a verify worker hashes and copies in one pass: this thread
   * touches no byte of it.
   */
  async readInto(offset: number, length: number, target: Buffer): Promise<[number, number][]> {
    const { blockSize } = this.manifest;
    if (target.length < length)
      throw new FerryError("BAD_RANGE", `a ${target.length}-byte target cannot take ${length} bytes`, {
        kind: "internal",
      });
    const copy = async (bytes: Buffer): Promise<[number, number][]> => {
      const runs = dataRuns(bytes, blockSize);
      for (const [a, b] of runs) bytes.copy(target, a, a, b);
      return runs;
    };
    if (offset % blockSize !== 0) return copy(await this.read(offset, length));
    return this.lendRun(
      offset,
      length,
      async ({ data, first, recorded, key }) => {
        if (data.length !== length) return copy(await this.read(offset, length));
        const { bad, runs } = await sharedVerifyPool().check(data, blockSize, recorded, target);
        if (bad >= 0) throw damagedError(this.info, (first + bad) * blockSize, undefined, key);
        return runs;
      },
      async () => copy(await this.read(offset, length)),
    );
  }

  /**
   * Calls `fn` with the stored bytes of the blocks under [offset,
   * offset+length), lent from the store's buffer, when they are one run in
   * one segment that the store reads directly; `slow` otherwise. `fn` calls
   * `lent` once the bytes are verified: later errors are its caller's own.
   */
  private async lendRun<T>(
    offset: number,
    length: number,
    fn: (run: { data: Buffer; first: number; recorded: Buffer; key: string; lent: () => void }) => Promise<T>,
    slow: () => Promise<T>,
  ): Promise<T> {
    const { diskSize, blockSize } = this.manifest;
    const first = Math.floor(offset / blockSize);
    const last = Math.ceil((offset + length) / blockSize);
    const map = this.map;
    let one = length > 0 && offset >= 0 && offset + length <= diskSize && !map.isZero(first);
    for (let b = first + 1; one && b < last; b++)
      one = map.seg[b] === map.seg[first] && map.off[b] === map.off[first]! + (b - first) * blockSize;
    const key = one ? this.keys.get(map.seg[first]!) : undefined;
    const reader = key ? this.segmentReader(key) : undefined;
    if (!key || !reader) return slow();
    const range = {
      offset: map.off[first]!,
      length: Math.min((last - first) * blockSize, diskSize - first * blockSize),
    };
    let lent = false;
    try {
      return await (
        await reader
      ).lend(range, async (data) => {
        if (data.length !== range.length) throw shortSegment(key, range);
        const recorded = Buffer.from(
          map.hash.buffer,
          map.hash.byteOffset + first * HASH_BYTES,
          (last - first) * HASH_BYTES,
        );
        return fn({ data, first, recorded, key, lent: () => (lent = true) });
      });
    } catch (err) {
      if (lent) throw err;
      // A segment merged away meanwhile: `read` lists the segments again.
      if (err instanceof FerryError && err.code === "OBJECT_NOT_FOUND") return slow();
      throw err instanceof FerryError && err.code === "SNAPSHOT_DAMAGED"
        ? err
        : damagedError(this.info, offset, err);
    }
  }

  private async closeReaders(): Promise<void> {
    const open = [...this.readers.values()];
    this.readers.clear();
    await Promise.allSettled(open.map(async (r) => (await r).close()));
  }

  async *extents(): AsyncIterable<SnapshotExtent> {
    const { diskSize, blockSize } = this.manifest;
    const blocks = this.map.blocks;
    let b = 0;
    while (b < blocks) {
      const zero = this.map.isZero(b);
      let n = 1;
      while (
        b + n < blocks &&
        this.map.isZero(b + n) === zero &&
        (zero || (n + 1) * blockSize <= MAX_DATA_EXTENT)
      )
        n++;
      const offset = b * blockSize;
      yield { offset, length: Math.min(n * blockSize, diskSize - offset), zero };
      b += n;
    }
  }

  /** Blocks the snapshot stores data for (not zeros). */
  dataBlocks(): number {
    let n = 0;
    for (let b = 0; b < this.map.blocks; b++) if (!this.map.isZero(b)) n++;
    return n;
  }

  async close(): Promise<void> {
    await this.closeReaders();
    this.release();
  }
}

function shortSegment(key: string, range: { offset: number; length: number }): FerryError {
  return new FerryError("OBJECT_NOT_FOUND", `segment ${key} ends before ${range.offset}+${range.length}`);
}

function damagedError(
  info: SnapshotInfo,
  offset: number | undefined,
  cause?: unknown,
  key?: string,
): FerryError {
  const where = offset === undefined ? "" : ` at offset ${offset}`;
  const why =
    cause instanceof Error ? `: ${cause.message}` : ": stored data does not match its recorded BLAKE3 hash";
  return new FerryError(
    "SNAPSHOT_DAMAGED",
    `snapshot ${info.snapshotId} of ${info.sourceServerId}/${info.diskId} is damaged${where}${why}; use an older snapshot or resynchronise (ferry snapshot verify names every damaged block)`,
    {
      details: {
        snapshotId: info.snapshotId,
        sourceServerId: info.sourceServerId,
        diskId: info.diskId,
        ...(offset === undefined ? {} : { offset }),
        ...(key ? { segment: key } : {}),
      },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/**
 * Opens the catalog of a staging store from another process, read-only: a
 * data directory path, or `s3://bucket/prefix` (with `endpoint`,
 * `forcePathStyle`, `credentials` as needed). Cannot take snapshots.
 */
export function openCatalog(storeUrl: string, o: StoreUrlOptions = {}): StoreCatalog {
  return new StoreCatalog(openStore(storeUrl, { ...o, readOnly: true }));
}
