/**
 * Continuous replication of one disk after its initial sync: drain the change
 * tracker, read the changed blocks (never stale), send them, mark consistency
 * points, and keep lag and backlog true. A tracker gap means changes may have
 * been missed: rescan.
 */
import type { Logger } from "../lib/log.ts";
import { BarrierFlags } from "../wire/index.ts";
import type { BlockSource } from "./disk/block-source.ts";
import { type Freeze, freezeFilesystem } from "./freeze.ts";
import type { DataStream } from "./stream.ts";
import type { ChangeTracker, DirtyExtent } from "./tracker/index.ts";

/** What the agent reports about a disk in continuous mode (the API's data replication state). */
export interface ContinuousStatus {
  diskId: string;
  dataReplicationState: "CONTINUOUS" | "BACKLOG" | "RESCAN";
  /** Bytes written on the source and not yet durable on the replicator. */
  backloggedBytes: number;
  /** Milliseconds since the replica last had no backlog (0 while it has none). */
  lagMs: number;
  /** When the replica was last fully caught up (ISO). */
  lastCaughtUpAt: string;
  /** Last consistency point acknowledged by the replicator (ISO), if any. */
  lastConsistentAt: string | null;
  writeBytesPerSecond: number;
  sendBytesPerSecond: number;
  /** Set when the source writes faster than the data can be sent. */
  error?: { error: "NOT_CONVERGING"; rawError: string };
  rescannedBytes: number;
  tracker: "ebpf" | "scan";
}

export interface ContinuousOptions {
  tracker: ChangeTracker;
  /** How often to drain the tracker. @default 200 */
  intervalMs?: number;
  /** How often to mark a consistency point. @default 10000 */
  consistencyIntervalMs?: number;
  /** Mountpoints to freeze briefly at consistency points (fsfreeze). */
  freeze?: string[];
  /** Longest freeze before the watchdog thaws. @default 2000 */
  freezeMaxMs?: number;
  /** Report NOT_CONVERGING when the backlog grew for this long. @default 30000 */
  convergeWindowMs?: number;
  onStatus?: (status: ContinuousStatus) => void;
}

export interface ContinuousContext {
  diskId: string;
  stream: DataStream;
  source: BlockSource;
  log: Logger;
  signal?: AbortSignal;
  /** Rescans [start, end) against the replicator's hashes. */
  rescan: (start: number, end: number) => Promise<void>;
  rescannedBytes: () => number;
  wireBytes: () => number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * Runs until the signal aborts or the connection fails. Extents taken from the
 * tracker but not acknowledged are put back into it before returning or
 * throwing, so nothing is lost across a reconnect or a clean stop.
 */
export async function runContinuous(ctx: ContinuousContext, o: ContinuousOptions): Promise<void> {
  const { tracker, onStatus } = o;
  const { stream: s, source, log } = ctx;
  const interval = o.intervalMs ?? 200;
  const consistencyEvery = o.consistencyIntervalMs ?? 10000;
  let barrierId = Date.now();
  let lastConsistencyAt = 0;
  let lastConsistentAt: string | null = null;
  let caughtUpAt = Date.now();
  let backlogRisingSince: number | undefined;
  let prevBacklog = 0;
  let state: ContinuousStatus["dataReplicationState"] = "CONTINUOUS";
  const sendSamples: { t: number; bytes: number }[] = [];
  let inHand: DirtyExtent[] = [];

  const sendRate = () => {
    const now = Date.now();
    sendSamples.push({ t: now, bytes: ctx.wireBytes() });
    while (sendSamples.length > 2 && now - sendSamples[0]!.t > 10000) sendSamples.shift();
    const first = sendSamples[0]!;
    return now > first.t ? ((ctx.wireBytes() - first.bytes) * 1000) / (now - first.t) : 0;
  };

  const status = () => {
    const backlog = tracker.stats().dirtyBytes + s.unackedBytes + inHand.reduce((n, e) => n + e.length, 0);
    const now = Date.now();
    if (backlog === 0) caughtUpAt = now;
    if (backlog > prevBacklog && backlog > 0) backlogRisingSince ??= now;
    else if (backlog < prevBacklog || backlog === 0) backlogRisingSince = undefined;
    prevBacklog = backlog;
    const writeRate = tracker.writeRate();
    const rate = sendRate();
    const st: ContinuousStatus = {
      diskId: ctx.diskId,
      dataReplicationState:
        state === "RESCAN" ? "RESCAN" : backlog > 64 * 1024 * 1024 ? "BACKLOG" : "CONTINUOUS",
      backloggedBytes: backlog,
      lagMs: backlog === 0 ? 0 : now - caughtUpAt,
      lastCaughtUpAt: new Date(caughtUpAt).toISOString(),
      lastConsistentAt,
      writeBytesPerSecond: Math.round(writeRate),
      sendBytesPerSecond: Math.round(rate),
      rescannedBytes: ctx.rescannedBytes(),
      tracker: tracker.kind,
    };
    if (
      backlogRisingSince !== undefined &&
      now - backlogRisingSince > (o.convergeWindowMs ?? 30000) &&
      writeRate > rate
    ) {
      st.error = {
        error: "NOT_CONVERGING",
        rawError: `the source writes ${(writeRate / 1e6).toFixed(1)} MB/s but only ${(rate / 1e6).toFixed(1)} MB/s reach the replicator; the backlog has grown for ${Math.round((now - backlogRisingSince) / 1000)} s (raise bandwidthThrottling, or check the link)`,
      };
    }
    onStatus?.(st);
    return st;
  };

  const sendExtents = async (extents: DirtyExtent[]) => {
    inHand = extents;
    while (inHand.length) {
      const e = inHand[0]!;
      // Frames start on hash-block boundaries, whatever the tracker's granularity.
      const hbs = s.hashBlockSize;
      const start = Math.floor(e.offset / hbs) * hbs;
      const end = Math.min(Math.ceil((e.offset + e.length) / hbs) * hbs, source.size);
      if (end > start) await s.sendRange(start, end);
      inHand.shift();
    }
  };

  try {
    while (!ctx.signal?.aborted) {
      s.check();
      if (tracker.gap) {
        const gap = tracker.gap;
        log.warn("change tracking has a gap; rescanning", { code: gap.code, reason: gap.reason });
        state = "RESCAN";
        status();
        tracker.acknowledgeGap();
        tracker.drain(); // the rescan covers these
        await ctx.rescan(0, source.size);
        state = "CONTINUOUS";
      }
      const extents = tracker.drain();
      if (extents.length) await sendExtents(extents);

      const now = Date.now();
      if (now - lastConsistencyAt >= consistencyEvery) {
        lastConsistencyAt = now;
        await consistencyPoint();
      }
      status();
      await sleep(interval, ctx.signal);
    }
  } finally {
    // What was taken from the tracker but not made durable goes back into it.
    const back = [...inHand, ...s.unacked().map((u) => ({ offset: u.start, length: u.end - u.start }))];
    if (back.length) tracker.markDirty(back);
  }

  /**
   * A consistency point: every write completed before it is in the replica
   * and no later one is. With a freeze, writes are held while the dirty set
   * is read; without, the point is only marked if no write completed while
   * we were reading (checked by draining again).
   */
  async function consistencyPoint(): Promise<void> {
    let frozen: Freeze[] = [];
    try {
      for (const m of o.freeze ?? []) frozen.push(await freezeFilesystem(m, o.freezeMaxMs ?? 2000));
    } catch (err) {
      for (const f of frozen) await f.thaw();
      frozen = [];
      log.warn("filesystem freeze failed; marking the consistency point without it", {
        error: (err as Error).message,
      });
    }
    let consistent = false;
    try {
      if (tracker.kind === "ebpf") {
        await tracker.settle();
        await sendExtents(tracker.drain());
        await tracker.settle();
        const during = tracker.drain();
        consistent = during.length === 0;
        if (!consistent) tracker.markDirty(during);
      }
      // The scan tracker learns of writes only at its next pass: it never marks a point consistent.
    } finally {
      for (const f of frozen) await f.thaw();
    }
    const seq = await s.barrier(++barrierId, consistent ? BarrierFlags.CONSISTENT : 0);
    if (consistent) {
      await s.waitAcked(seq);
      lastConsistentAt = new Date().toISOString();
    }
  }
}
