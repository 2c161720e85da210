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
import { ExtentSender, type ExtentSenderOptions, type SendStats } from "./continuous-send.ts";
import { ConvergenceMeter, notConvergingMessage } from "./continuous-status.ts";
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
  /** The last filesystem freeze (consistency points with `freeze`): how long it held, and whether the watchdog thawed it. */
  lastFreeze?: { heldMs: number; watchdogThawed: boolean };
}

export interface ContinuousOptions {
  tracker: ChangeTracker;
  /** How often to drain the tracker. @default 100 */
  intervalMs?: number;
  /** How often to mark a consistency point. @default 10000 */
  consistencyIntervalMs?: number;
  /** Mountpoints to freeze briefly at consistency points (fsfreeze). */
  freeze?: string[];
  /** Longest freeze before the watchdog thaws (whole seconds, at least 1). @default 2000 */
  freezeMaxMs?: number;
  /** Report NOT_CONVERGING when the backlog did not shrink (nor empty) for this long. @default 30000 */
  convergeWindowMs?: number;
  /** A rescan (after a tracker gap) goes in slices of this size, sending tracked changes between them. @default 64 MiB */
  rescanSliceBytes?: number;
  /** How the changed extents are read and sent (reads in flight, read spans). */
  send?: ExtentSenderOptions;
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

const round = (ms: number) => Math.round(ms * 10) / 10;

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
  const interval = o.intervalMs ?? 100;
  const consistencyEvery = o.consistencyIntervalMs ?? 10000;
  const sender = new ExtentSender(source, o.send);
  const meter = new ConvergenceMeter({ windowMs: o.convergeWindowMs ?? 30000 });
  let barrierId = Date.now();
  let lastConsistencyAt = 0;
  let lastConsistentAt: string | null = null;
  let lastFreeze: ContinuousStatus["lastFreeze"];
  let state: ContinuousStatus["dataReplicationState"] = "CONTINUOUS";
  /** The drain being sent: put back whole if sending does not finish (resending is harmless). */
  let batch: DirtyExtent[] = [];
  /** Bytes of the batch not yet handed to the stream. */
  let batchUnsent = 0;
  let lastStatusAt = 0;
  /** Scan tracker: its counters at the first of the quiet consistency points in a row (nothing pending, nothing found since). */
  let quietSince: { scans: number; events: number } | undefined;
  /** eBPF: writes completed during the last loop turn (a consistency point without a freeze cannot succeed then). */
  let writing = false;
  let eventsBefore = -1;

  const status = () => {
    const backlog = tracker.stats().dirtyBytes + s.unackedBytes + batchUnsent;
    const writeRate = tracker.writeRate();
    const v = meter.update({
      backlogBytes: backlog,
      sentBytes: ctx.wireBytes(),
      writeBytesPerSecond: writeRate,
    });
    lastStatusAt = Date.now();
    const st: ContinuousStatus = {
      diskId: ctx.diskId,
      dataReplicationState:
        state === "RESCAN" ? "RESCAN" : backlog > 64 * 1024 * 1024 ? "BACKLOG" : "CONTINUOUS",
      backloggedBytes: backlog,
      lagMs: v.lagMs,
      lastCaughtUpAt: new Date(v.caughtUpAt).toISOString(),
      lastConsistentAt,
      writeBytesPerSecond: Math.round(writeRate),
      sendBytesPerSecond: Math.round(v.sendBytesPerSecond),
      rescannedBytes: ctx.rescannedBytes(),
      tracker: tracker.kind,
      ...(lastFreeze ? { lastFreeze } : {}),
    };
    if (v.notConverging)
      st.error = { error: "NOT_CONVERGING", rawError: notConvergingMessage(v.notConverging) };
    onStatus?.(st);
    return st;
  };

  const sendExtents = async (extents: DirtyExtent[]): Promise<SendStats & { bytes: number }> => {
    batch = extents;
    const bytes = extents.reduce((n, e) => n + e.length, 0);
    batchUnsent = bytes;
    // A long batch (a slow link) must not silence the status.
    const beat = setInterval(() => {
      if (Date.now() - lastStatusAt >= 500) status();
    }, 500);
    let stats: SendStats;
    try {
      stats = await sender.send(s, extents, (sent) => {
        batchUnsent = Math.max(0, batchUnsent - sent);
      });
    } finally {
      clearInterval(beat);
    }
    batch = [];
    batchUnsent = 0;
    return { ...stats, bytes };
  };

  try {
    while (!ctx.signal?.aborted) {
      const turnStart = performance.now();
      s.check();
      if (tracker.gap) await rescanAll();
      const events = tracker.stats().events;
      writing = events !== eventsBefore;
      eventsBefore = events;
      const extents = tracker.drain();
      const sent = extents.length ? await sendExtents(extents) : undefined;
      const sentAt = performance.now();

      const now = Date.now();
      if (now - lastConsistencyAt >= consistencyEvery) {
        lastConsistencyAt = now;
        await consistencyPoint();
      }
      const st = status();
      // Where a turn's time went: what lag is made of (FERRY_LOG_LEVEL=debug).
      if (sent)
        log.debug("turn", {
          extents: extents.length,
          bytes: sent.bytes,
          spans: sent.spans,
          readBytes: sent.readBytes,
          sendMs: round(sentAt - turnStart),
          readWaitMs: round(sent.readWaitMs),
          socketWaitMs: round(sent.socketWaitMs),
          consistencyMs: round(performance.now() - sentAt),
          backloggedBytes: st.backloggedBytes,
          unackedBytes: s.unackedBytes,
        });
      // A drain every `interval`, not `interval` after the last turn: when a turn took longer (thousands
      // of extents), what was written meanwhile is drained at once rather than after another pause.
      await sleep(Math.max(0, interval - (performance.now() - turnStart)), ctx.signal);
    }
  } finally {
    // What was taken from the tracker but not made durable goes back into it.
    const back = [...batch, ...s.unacked().map((u) => ({ offset: u.start, length: u.end - u.start }))];
    if (back.length) tracker.markDirty(back);
  }

  /**
   * A tracker gap: every block is compared with the replicator's hashes. The
   * disk is rescanned in slices, and the changes tracked meanwhile are sent
   * between slices, so a rescan of a large disk does not hold back everything
   * written during it. A new gap during the rescan restarts the full circle
   * from where it is.
   */
  async function rescanAll(): Promise<void> {
    const size = source.size;
    const slice = Math.max(
      s.hashBlockSize,
      Math.floor((o.rescanSliceBytes ?? 64 * 1024 * 1024) / s.hashBlockSize) * s.hashBlockSize,
    );
    state = "RESCAN";
    let at = 0;
    let covered = 0;
    while (covered < size) {
      const gap = tracker.gap;
      if (gap) {
        log.warn("change tracking has a gap; rescanning", { code: gap.code, reason: gap.reason, from: at });
        tracker.acknowledgeGap();
        covered = 0;
      }
      status();
      const end = Math.min(size, at + slice);
      await ctx.rescan(at, end);
      covered += end - at;
      at = end % size;
      const extents = tracker.drain();
      if (extents.length) await sendExtents(extents);
      if (ctx.signal?.aborted) return;
    }
    state = "CONTINUOUS";
  }

  /**
   * The scan tracker learns of writes only by reading the disk, so it can
   * only vouch for a quiet disk: when nothing was pending at an earlier point
   * and a whole pass that began after it found nothing changed, the replica
   * (unchanged since) equals the disk as it was when that pass began.
   */
  function scanQuiet(): boolean {
    const st = tracker.stats();
    if (st.dirtyBytes + s.unackedBytes + batchUnsent > 0) {
      quietSince = undefined;
      return false;
    }
    if (!quietSince || st.events !== quietSince.events) {
      quietSince = { scans: st.scans, events: st.events };
      return false;
    }
    // The pass running at the quiet point may have begun before it: the one after it counts.
    return st.scans >= quietSince.scans + 2;
  }

  /**
   * A consistency point: every write completed before it is in the replica
   * and no later one is. The tracker settles (every completed write is in its
   * dirty set), the dirty set is sent, and the tracker settles again: the
   * point is consistent only if nothing was written meanwhile (with a freeze,
   * nothing can be, unless the watchdog thawed first). The scan tracker marks
   * a point consistent only on a quiet disk (scanQuiet).
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
      if (tracker.kind === "ebpf" && !frozen.length && writing) {
        // Writes completed during the last turn: a point now would almost surely find more, and the
        // settles hold the loop (probe reads through the tracer). The barrier still goes, not consistent.
        consistent = false;
      } else if (tracker.kind === "ebpf") {
        // Without a freeze the first settle only makes success likelier while the disk is written, and
        // it holds the loop: the second settle alone decides.
        if (frozen.length) await tracker.settle();
        await sendExtents(tracker.drain());
        await tracker.settle();
        const during = tracker.drain();
        consistent = during.length === 0;
        if (!consistent) tracker.markDirty(during);
      } else consistent = scanQuiet();
    } finally {
      // Always thawed, whatever failed above (the freeze's own watchdog covers a dead agent).
      for (const f of frozen) {
        const t = await f.thaw();
        lastFreeze = { heldMs: Math.round(t.heldMs), watchdogThawed: t.watchdogThawed };
        if (t.watchdogThawed)
          log.warn("the filesystem freeze outlasted its bound and the watchdog thawed it", {
            mountpoint: f.mountpoint,
            heldMs: Math.round(t.heldMs),
            consistent,
          });
      }
    }
    // Also when nothing changed: the barrier is the whole cost, and an idle disk gets fresh snapshots.
    const seq = await s.barrier(++barrierId, consistent ? BarrierFlags.CONSISTENT : 0);
    // The replicator acknowledges a consistent barrier after its flush and snapshot: the loop goes on
    // sending meanwhile (what follows the barrier in the stream is after the point).
    if (consistent) {
      const at = new Date().toISOString();
      s.waitAcked(seq).then(
        () => (lastConsistentAt = at),
        () => {}, // a failed connection is found by s.check() in the loop
      );
    }
  }
}
