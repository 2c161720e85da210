/**
 * Garbage collection of a volume's segments once snapshots expired.
 *
 * 1. Expired manifests are deleted first (that is the expiry's commit point).
 * 2. Liveness: a record is live when the head or a retained snapshot sees it
 *    as a block's newest record. Every view's block map is built from the
 *    segment indexes (immutable, so cached).
 * 3. A sealed segment with no live record is deleted.
 * 4. Runs of adjacent sealed segments that no retained snapshot boundary
 *    splits are merged into one object holding their live records (only
 *    when it frees space or gathers small segments): the merged object is
 *    written first, then the head index moves to it, then the sources are
 *    deleted. A crash in between leaves both; on open the merged object,
 *    whose range covers them, supersedes them.
 * Never with a reader in progress on the volume (in-process lease).
 */
import type { Logger } from "../lib/log.ts";
import { ZERO_OFFSET, type BlockMap } from "./store/block-map.ts";
import {
  encodeRecordHeader,
  encodeTrailer,
  recordBytes,
  segmentKey,
  type SegmentRecord,
  type SegmentRef,
} from "./store/segment.ts";
import { IndexCache, buildView } from "./store/views.ts";
import { manifestKey, volumeLeased } from "./snapshots.ts";
import { HASH_BYTES } from "../wire/index.ts";
import type { SnapshotManifest, StagingVolume } from "./volume.ts";

export interface GcOptions {
  /** Merge only runs whose input is at most this big (they are read in memory). @default 256 MiB */
  maxMergeBytes?: number;
  /** Segments below this size count as small (worth gathering). @default 64 MiB */
  smallSegmentBytes?: number;
  log?: Logger;
}

export interface GcReport {
  expired: string[];
  deletedSegments: string[];
  mergedSegments: { key: string; from: string[] }[];
  freedBytes: number;
  skipped?: "leased";
}

/** Deletes `expired` manifests, then collects what no retained snapshot nor the head needs. */
export async function collectGarbage(
  vol: StagingVolume,
  retained: readonly SnapshotManifest[],
  expired: readonly SnapshotManifest[],
  o: GcOptions = {},
): Promise<GcReport> {
  const report: GcReport = { expired: [], deletedSegments: [], mergedSegments: [], freedBytes: 0 };
  for (const m of expired) {
    await vol.store.delete(manifestKey(vol.prefix, m.snapshotId));
    report.expired.push(m.snapshotId);
  }
  if (volumeLeased(vol.store, vol.prefix)) return { ...report, skipped: "leased" };
  return vol.exclusive(async () => {
    const indexes = new IndexCache(vol.store);
    const segments = vol.sealedSegments();
    const live = await liveRecords(vol, segments, retained, indexes);

    // Segments nobody needs.
    for (const ref of segments) {
      if ((live.get(ref.to)?.size ?? 0) > 0) continue;
      await vol.store.delete(ref.key);
      vol.forgetSegment(ref);
      report.deletedSegments.push(ref.key);
      report.freedBytes += ref.size;
    }

    // Merge runs no retained boundary splits.
    const remaining = vol.sealedSegments();
    const boundaries = retained
      .map((m) => m.segmentSeq)
      .concat(
        retained.map((m) => m.baseSeq - 1),
        vol.baseSeq - 1,
      );
    const maxMerge = o.maxMergeBytes ?? 256 * 1024 * 1024;
    const small = o.smallSegmentBytes ?? 64 * 1024 * 1024;
    let group: SegmentRef[] = [];
    const flushGroup = async () => {
      const g = group;
      group = [];
      if (g.length < 2) return;
      const records = await Promise.all(g.map((r) => indexes.get(r)));
      const liveBytes = g.map((r, i) => liveDataBytes(records[i]!, live.get(r.to), vol.meta.hashBlockSize));
      const total = g.reduce((a, r) => a + r.size, 0);
      const kept = liveBytes.reduce((a, b) => a + b, 0);
      const worth = total - kept >= total / 4 || g.every((r) => r.size < small);
      if (!worth || total > maxMerge) return;
      const merged = await mergeSegments(vol, g, records, live);
      report.mergedSegments.push({ key: merged.key, from: g.map((r) => r.key) });
      report.freedBytes += total - merged.size;
    };
    for (const ref of remaining) {
      const prev = group.at(-1);
      const split = prev !== undefined && boundaries.some((s) => prev.to <= s && s < ref.from);
      if (split) await flushGroup();
      group.push(ref);
    }
    await flushGroup();
    o.log?.info("staging store garbage collected", {
      volume: vol.prefix,
      ...report,
      mergedSegments: report.mergedSegments.length,
    });
    return report;
  });
}

/**
 * Segment `to` → the keys (liveKey) of the records some view reads from it:
 * the head's and each retained snapshot's. A snapshot's block map is built,
 * marked and dropped before the next: one map at a time, whatever the number
 * of snapshots.
 */
async function liveRecords(
  vol: StagingVolume,
  segments: readonly SegmentRef[],
  retained: readonly SnapshotManifest[],
  indexes: IndexCache,
): Promise<Map<number, Set<number>>> {
  const live = new Map<number, Set<number>>();
  markLive(live, vol.map);
  for (const m of retained) {
    const bounds = { baseSeq: m.baseSeq, segmentSeq: m.segmentSeq };
    markLive(
      live,
      await buildView(segments, bounds, { diskSize: m.diskSize, blockSize: m.blockSize }, indexes),
    );
  }
  return live;
}

/**
 * A record's block in a segment, as a number (no string per block and view):
 * its data offset, unique in the segment; for a zero record, -(block + 1).
 */
function liveKey(block: number, off: number): number {
  return off === ZERO_OFFSET ? -(block + 1) : off;
}

function markLive(live: Map<number, Set<number>>, map: BlockMap): void {
  for (let b = 0; b < map.blocks; b++) {
    const seq = map.seg[b]!;
    if (seq === 0) continue;
    let s = live.get(seq);
    if (!s) live.set(seq, (s = new Set()));
    s.add(liveKey(b, map.off[b]!));
  }
}

function liveDataBytes(records: readonly SegmentRecord[], live: Set<number> | undefined, bs: number): number {
  if (!live) return 0;
  let n = 0;
  for (const r of records) {
    if (r.zero) continue;
    for (let i = 0; i < r.count; i++) {
      if (live.has(r.dataOffset + i * bs)) n += Math.min(bs, r.dataLength - i * bs);
    }
  }
  return n;
}

/** Writes the live records of `g` as one object, points the head at it, deletes the sources. */
async function mergeSegments(
  vol: StagingVolume,
  g: readonly SegmentRef[],
  records: readonly (readonly SegmentRecord[])[],
  live: Map<number, Set<number>>,
): Promise<SegmentRef> {
  const bs = vol.meta.hashBlockSize;
  const parts: Buffer[] = [];
  const out: SegmentRecord[] = [];
  /** "seq:block:oldOffset" → new offset. */
  const moved = new Map<string, number>();
  let size = 0;
  for (let gi = 0; gi < g.length; gi++) {
    const ref = g[gi]!;
    const liveHere = live.get(ref.to);
    if (!liveHere) continue;
    const body = await vol.store.get(ref.key);
    for (const r of records[gi]!) {
      for (let i = 0; i < r.count; i++) {
        const b = r.firstBlock + i;
        const off = r.zero ? r.dataOffset : r.dataOffset + i * bs;
        if (!liveHere.has(liveKey(b, r.zero ? ZERO_OFFSET : off))) continue;
        const data = r.zero
          ? Buffer.alloc(0)
          : body.subarray(off, Math.min(off + bs, r.dataOffset + r.dataLength));
        const hashes = r.zero ? Buffer.alloc(0) : r.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
        const header = encodeRecordHeader({
          firstBlock: b,
          count: 1,
          zero: r.zero,
          dataLength: data.length,
          hashes,
        });
        const dataOffset = r.zero ? size : size + header.length + hashes.length;
        parts.push(header, hashes, data);
        out.push({ firstBlock: b, count: 1, zero: r.zero, dataOffset, dataLength: data.length, hashes });
        moved.set(`${ref.to}:${b}:${r.zero ? ZERO_OFFSET : off}`, dataOffset);
        size += recordBytes(1, r.zero, data.length);
      }
    }
  }
  const from = g[0]!.from;
  const to = g.at(-1)!.to;
  const key = segmentKey(vol.prefix, from, to);
  const trailer = encodeTrailer(out, size, bs);
  await vol.store.put(key, [...parts, trailer]);
  const merged: SegmentRef = { key, from, to, size: size + trailer.length };
  vol.replaceSegments(merged, g, (b) => moved.get(`${vol.map.seg[b]}:${b}:${vol.map.off[b]}`));
  for (const ref of g) await vol.store.delete(ref.key);
  return merged;
}
