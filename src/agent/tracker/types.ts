/**
 * The change-tracking contract between a tracker and the sync engine. Every
 * tracker (eBPF, scan) implements ChangeTracker; `selectTracker` picks one.
 */

/** A byte range of the tracked device, aligned to the tracker's blockSize (the last may end at the disk's end). */
export interface DirtyExtent {
  offset: number;
  length: number;
}

/** Why a gap may exist. Stable strings, for logs, tests and the API. */
export type TrackerGapCode =
  | "first-start" // no state from an earlier run: nothing before start() was observed
  | "unclean-stop" // the previous run did not stop cleanly (crash, kill -9, power loss)
  | "rebooted" // the machine rebooted since the clean stop: shutdown and boot writes were not observed
  | "written-while-stopped" // the device's write counters moved while no tracker was running
  | "state-mismatch" // the persisted state belongs to another device, size or block size
  | "lost-events" // the tracer reported lost events
  | "tracer-exited" // the tracer process died or could not be started
  | "tracer-output" // the tracer printed something the parser cannot read
  | "scan-failed"; // a scan could not read the disk

/** Set when changes may have been missed: the caller must rescan (read everything, send what differs). */
export interface TrackerGap {
  code: TrackerGapCode;
  reason: string;
  /** ISO time of the first event of this gap (later causes are appended to `reason`). */
  since: string;
}

export interface TrackerStats {
  /** Write, write-zeroes and discard completions (eBPF) or changed blocks found (scan). */
  events: number;
  writeBytes: number;
  discardBytes: number;
  /** Events the tracer said it lost, or misses the counter check found (eBPF). */
  lostEvents: number;
  /** eBPF: misses found by the counter check and placed on issued requests (marked dirty, no rescan). */
  placedMisses?: number;
  /** Dirty bytes waiting for the next drain. */
  dirtyBytes: number;
  /** Tracer restarts after it died (eBPF), or scan passes completed (scan). */
  restarts: number;
  scans: number;
  /** eBPF: time from a write's completion in the kernel to its line being handled here, in ms (max since start). */
  maxDeliveryMs?: number;
}

export interface ChangeTracker {
  readonly kind: "ebpf" | "scan";
  /** Tracking granularity in bytes (64 KiB by default, the hash block size). */
  readonly blockSize: number;
  /** Size of the tracked device in bytes when tracking started. */
  readonly deviceSize: number;
  start(): Promise<void>;
  /** Removes and returns what changed since the last drain, coalesced, in offset order. */
  drain(): DirtyExtent[];
  /**
   * Puts extents back (e.g. drained ones the caller could not replicate before
   * stopping), so stop() persists them. Extents are widened to whole blocks.
   */
  markDirty(extents: readonly DirtyExtent[]): void;
  /**
   * Waits until every change completed before the call is in the dirty set
   * (eBPF: the tracer has caught up, proved by probe reads; scan: a full pass).
   * For consistency points (freeze, settle, drain) and tests.
   */
  settle(): Promise<void>;
  /** Set when events may have been missed: the caller must rescan. Cleared by acknowledgeGap(). */
  readonly gap: TrackerGap | undefined;
  acknowledgeGap(): void;
  /** Bytes written to the device per second, averaged over the last 10 s (for NOT_CONVERGING). */
  writeRate(): number;
  stats(): TrackerStats;
  /** Clean stop: persists the dirty bitmap and a clean-stop marker so a restart resumes without a rescan. */
  stop(): Promise<void>;
}

export const DEFAULT_BLOCK_SIZE = 64 * 1024;
