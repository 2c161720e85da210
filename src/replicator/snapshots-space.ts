/**
 * Space and integrity of a disk's snapshots, for `ferry snapshot list|verify`.
 * Exclusive bytes of a snapshot: stored data that only it keeps alive (what
 * expiring it alone would free). Verification re-hashes every stored block a
 * snapshot reads and names each damaged one.
 */
import { FerryError } from "../lib/errors.ts";

import { listManifests, type StoreCatalog } from "./snapshots.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { IndexCache, buildView, listSegments } from "./store/views.ts";
import { StagingVolume, volumePrefix } from "./volume.ts";

/** Exclusive bytes of each snapshot of a disk, by snapshot id (the head counts as a holder too). */
export async function exclusiveBytes(
  store: ObjectStore,
  sourceServerId: string,
  diskId: string,
): Promise<Map<string, number>> {
  const prefix = volumePrefix(sourceServerId, diskId);
  const manifests = await listManifests(store, prefix);
  const segments = await listSegments(store, prefix);
  const indexes = new IndexCache(store);
  const head = await StagingVolume.open(store, sourceServerId, diskId, { readOnly: true });
  await head.close();
  const holders = new Map<string, number>();
  const views = [];
  for (const m of manifests) {
    const map = await buildView(
      segments,
      { baseSeq: m.baseSeq, segmentSeq: m.segmentSeq },
      { diskSize: m.diskSize, blockSize: m.blockSize },
      indexes,
    );
    views.push({ m, map });
  }
  const count = (seg: number, b: number, off: number) => {
    const k = `${seg}:${b}:${off}`;
    holders.set(k, (holders.get(k) ?? 0) + 1);
  };
  for (let b = 0; b < head.map.blocks; b++)
    if (!head.map.isZero(b)) count(head.map.seg[b]!, b, head.map.off[b]!);
  for (const { map } of views)
    for (let b = 0; b < map.blocks; b++) if (!map.isZero(b)) count(map.seg[b]!, b, map.off[b]!);
  const out = new Map<string, number>();
  for (const { m, map } of views) {
    let bytes = 0;
    for (let b = 0; b < map.blocks; b++) {
      if (map.isZero(b)) continue;
      if (holders.get(`${map.seg[b]}:${b}:${map.off[b]}`) === 1)
        bytes += Math.min(m.blockSize, m.diskSize - b * m.blockSize);
    }
    out.set(m.snapshotId, bytes);
  }
  return out;
}

export interface SnapshotVerifyReport {
  snapshotId: string;
  sourceServerId: string;
  diskId: string;
  /** Stored (non-zero) blocks re-hashed. */
  blocks: number;
  damagedBlocks: number;
  /** Offsets of damaged blocks (all of them, up to 1000). */
  damagedOffsets: number[];
  ok: boolean;
}

/** Re-hashes every stored block of a snapshot against its recorded hash. */
export async function verifySnapshot(
  catalog: StoreCatalog,
  sourceServerId: string,
  diskId: string,
  snapshotId: string,
): Promise<SnapshotVerifyReport> {
  const reader = await catalog.open(sourceServerId, diskId, snapshotId);
  const { blockSize } = reader.manifest;
  const report: SnapshotVerifyReport = {
    snapshotId,
    sourceServerId,
    diskId,
    blocks: 0,
    damagedBlocks: 0,
    damagedOffsets: [],
    ok: true,
  };
  try {
    for await (const e of reader.extents()) {
      if (e.zero) continue;
      report.blocks += Math.ceil(e.length / blockSize);
      try {
        await reader.read(e.offset, e.length);
      } catch (err) {
        if (
          !(err instanceof FerryError) ||
          err.code !== "SNAPSHOT_DAMAGED" ||
          err.details.offset === undefined
        )
          throw err;
        // Block by block, to name every damaged one.
        for (let at = e.offset; at < e.offset + e.length; at += blockSize) {
          try {
            await reader.read(at, Math.min(blockSize, e.offset + e.length - at));
          } catch (inner) {
            if (!(inner instanceof FerryError) || inner.code !== "SNAPSHOT_DAMAGED") throw inner;
            report.damagedBlocks++;
            if (report.damagedOffsets.length < 1000) report.damagedOffsets.push(at);
          }
        }
      }
    }
  } finally {
    await reader.close();
  }
  report.ok = report.damagedBlocks === 0;
  return report;
}
