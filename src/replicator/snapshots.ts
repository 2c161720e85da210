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
import { blake3Of } from "../wire/index.ts";
import { openStore, type StoreUrlOptions } from "./store/index.ts";
import type { BlockMap } from "./store/block-map.ts";
import type { ObjectStore } from "./store/object-store.ts";
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

  constructor(store: ObjectStore, prefix: string, m: SnapshotManifest, release: () => void) {
    this.store = store;
    this.prefix = prefix;
    this.manifest = m;
    this.info = snapshotInfo(m);
    this.release = release;
  }

  /** (Re)builds the block map from the segments the snapshot covers. */
  async load(): Promise<void> {
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
    const out = Buffer.alloc((last - first) * blockSize);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.readBlocks(first, last, out);
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
    return out.subarray(skip, skip + length);
  }

  private async readBlocks(first: number, last: number, out: Buffer): Promise<void> {
    const { diskSize, blockSize } = this.manifest;
    const map = this.map;
    let b = first;
    while (b < last) {
      if (map.isZero(b)) {
        out.fill(0, (b - first) * blockSize, (b - first + 1) * blockSize);
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
      const data = await this.store.get(key, { offset: start, length: bytes });
      for (let i = 0; i < n; i++) {
        const block = data.subarray(i * blockSize, Math.min((i + 1) * blockSize, bytes));
        if (!blake3Of(block).equals(map.hashOf(b + i))) {
          throw damagedError(this.info, (b + i) * blockSize, undefined, key);
        }
      }
      data.copy(out, (b - first) * blockSize);
      b += n;
    }
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
    this.release();
  }
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
