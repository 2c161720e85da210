/**
 * Opening a staging volume after a crash at any point (the table in
 * docs/staging-store.md, "Crash safety"): segments written past the last
 * commit are dropped, a merged segment supersedes the ones inside it, an
 * open segment is cut back to its committed length, and the head index is
 * rebuilt from the segment indexes. A read-only open changes nothing in the
 * store.
 */
import { FerryError } from "../lib/errors.ts";
import { readSegmentIndex, type BlockMap } from "./store/block-map.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { parseSegmentKey, scanSegment, segmentKey, type SegmentRef } from "./store/segment.ts";
import { SegmentIndexBuilder } from "./store/segment-index.ts";
import type { HeadRecord, OpenSegment } from "./volume-head.ts";

/** What recovery works on: the head record (updated in place) and the volume's in-memory state. */
export interface RecoveryTarget {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly readOnly: boolean;
  readonly head: HeadRecord;
  readonly map: BlockMap;
  /** Filled with the committed sealed segments, by `to`. */
  readonly segments: Map<number, SegmentRef>;
}

/** Recovers a volume; returns its open segment when one is writable (never for a read-only open). */
export async function recoverVolume(v: RecoveryTarget): Promise<OpenSegment | undefined> {
  const { store, prefix, head } = v;
  const listed = (await store.list(`${prefix}seg/`))
    .map((o) => parseSegmentKey(prefix, o.key, o.size))
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
    else v.segments.set(r.to, r);
  }
  const appendables = store.listAppendable ? await store.listAppendable(`${prefix}seg/`) : [];
  if (!v.readOnly) {
    for (const r of stale) await store.delete(r.key);
    for (const key of appendables) {
      const seq = parseSegmentKey(prefix, key, 0)?.to;
      if (seq !== openSeq || sealedOpen) await store.deleteAppendable?.(key);
    }
  }
  if (sealedOpen) {
    head.sealedThrough = sealedOpen.to;
    head.open = null;
  }
  for (const r of [...v.segments.values()].sort((a, b) => a.to - b.to)) {
    if (r.from < head.baseSeq) continue;
    v.map.apply(r.to, await readSegmentIndex(store, r), head.hashBlockSize);
  }
  if (head.open && head.open.length > 0) {
    const key = segmentKey(prefix, head.open.seq, head.open.seq);
    if (!appendables.includes(key)) {
      throw new FerryError(
        "STAGING_DAMAGED",
        `the open segment ${key} of ${store.location} is missing but the head record says ${head.open.length} bytes of it are durable`,
        { details: { key } },
      );
    }
    // Read-only: its blocks are read from the store (readAppendable), never written.
    const app = v.readOnly ? undefined : await store.openAppendable!(key, { truncateTo: head.open.length });
    const index = app ? new SegmentIndexBuilder() : undefined;
    const seq = head.open.seq;
    try {
      await scanSegment(
        (range) => (app ? app.read(range) : store.readAppendable!(key, range)),
        head.open.length,
        key,
        (r) => {
          v.map.applyRecord(seq, r, head.hashBlockSize);
          index?.add(r);
        },
      );
    } catch (err) {
      await app?.close();
      throw err;
    }
    if (app && index) {
      return { seq, app, parts: [], size: head.open.length, committed: head.open.length, index };
    }
  } else if (head.open && !v.readOnly) {
    head.open = null;
  }
  return undefined;
}
