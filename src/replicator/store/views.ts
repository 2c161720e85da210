/**
 * Views of a volume: the head, or a snapshot (the segments from its baseSeq
 * up to its segmentSeq). A block's content in a view is its newest record in
 * those segments.
 */
import { BlockMap, readSegmentIndex } from "./block-map.ts";
import type { ObjectStore } from "./object-store.ts";
import { parseSegmentKey, type SegmentRecord, type SegmentRef } from "./segment.ts";

/** Sealed segments of a volume, oldest first, without those a merged segment supersedes. */
export async function listSegments(store: ObjectStore, volumePrefix: string): Promise<SegmentRef[]> {
  const all = (await store.list(`${volumePrefix}seg/`))
    .map((o) => parseSegmentKey(volumePrefix, o.key, o.size))
    .filter((r): r is SegmentRef => r !== undefined);
  return all
    .filter(
      (a) => !all.some((b) => b !== a && b.from <= a.from && a.to <= b.to && b.to - b.from > a.to - a.from),
    )
    .sort((a, b) => a.to - b.to);
}

export interface ViewBounds {
  baseSeq: number;
  /** Highest segment sequence in the view (Infinity: the head's sealed part). */
  segmentSeq: number;
}

export function inView(ref: SegmentRef, v: ViewBounds): boolean {
  return ref.from >= v.baseSeq && ref.to <= v.segmentSeq;
}

/** Caches segment indexes (immutable once sealed) by key. */
export class IndexCache {
  private readonly store: ObjectStore;
  private readonly cache = new Map<string, SegmentRecord[]>();

  constructor(store: ObjectStore) {
    this.store = store;
  }

  async get(ref: SegmentRef): Promise<SegmentRecord[]> {
    let r = this.cache.get(ref.key);
    if (!r) {
      r = await readSegmentIndex(this.store, ref);
      this.cache.set(ref.key, r);
    }
    return r;
  }
}

/** The block map of a view over the given sealed segments. */
export async function buildView(
  segments: readonly SegmentRef[],
  bounds: ViewBounds,
  geometry: { diskSize: number; blockSize: number },
  indexes: IndexCache,
): Promise<BlockMap> {
  const map = new BlockMap(Math.ceil(geometry.diskSize / geometry.blockSize));
  for (const ref of segments) {
    if (!inView(ref, bounds)) continue;
    map.apply(ref.to, await indexes.get(ref), geometry.blockSize);
  }
  return map;
}
