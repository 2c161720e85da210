/**
 * What every tracker keeps, whatever finds the changes: the dirty bitmap, the
 * open gap (with its log line when it opens), and the counters. The eBPF and
 * scan trackers own one each and differ only in how blocks become dirty.
 */
import type { Logger } from "../../lib/log.ts";
import type { DirtyBitmap } from "./bitmap.ts";
import { addGap } from "./gap.ts";
import type { DirtyExtent, TrackerGap, TrackerGapCode, TrackerStats } from "./types.ts";

export class DirtyState {
  private readonly devicePath: string;
  private readonly logger: Logger | undefined;
  /** Set by the tracker's start() (its size and block size come from the device). */
  bitmap: DirtyBitmap | undefined;
  private current: TrackerGap | undefined;
  readonly counts: TrackerStats = {
    events: 0,
    writeBytes: 0,
    discardBytes: 0,
    lostEvents: 0,
    dirtyBytes: 0,
    restarts: 0,
    scans: 0,
  };

  constructor(devicePath: string, logger: Logger | undefined) {
    this.devicePath = devicePath;
    this.logger = logger;
  }

  get gap(): TrackerGap | undefined {
    return this.current;
  }

  /** Opens a gap, or adds a cause to the open one; the first cause is logged. */
  setGap(code: TrackerGapCode, reason: string): void {
    const fresh = this.current === undefined;
    this.current = addGap(this.current, code, reason);
    if (fresh)
      this.logger?.warn("change tracking gap: a rescan is needed", { device: this.devicePath, code, reason });
  }

  /** Restores a gap saved at a clean stop (with its original time). */
  restoreGap(gap: TrackerGap): void {
    this.current = gap;
  }

  clearGap(): void {
    this.current = undefined;
  }

  drain(): DirtyExtent[] {
    return this.bitmap?.drain() ?? [];
  }

  markDirty(extents: readonly DirtyExtent[]): void {
    for (const x of extents) this.bitmap?.markRange(x.offset, x.length);
  }

  stats(extra: Partial<TrackerStats> = {}): TrackerStats {
    return { ...this.counts, dirtyBytes: this.bitmap?.dirtyBytes ?? 0, ...extra };
  }
}
