/**
 * Sending the changed extents of one drain: the continuous loop's data path.
 *
 * Random writes dirty thousands of scattered small extents a second. Sent one
 * after the other (read, then frames, then the next read), each pays a disk
 * round trip and the loop falls behind while the CPU idles. So extents are
 * first grouped into read spans (nearby extents share one O_DIRECT read; only
 * the dirty parts are sent), several spans are read at once, and the frames of
 * each span go to the socket while the next spans are still being read.
 */
import { FerryError } from "../lib/errors.ts";
import type { BlockSource } from "./disk/block-source.ts";
import type { DataStream } from "./stream.ts";
import type { DirtyExtent } from "./tracker/index.ts";

const KiB = 1024;

export interface ExtentSenderOptions {
  /**
   * Reads in flight at once. They run on libuv's thread pool, which bin/ferry
   * sizes to match for the agent (32 threads): with 4 reads at a time the loop
   * spent most of a turn waiting for the disk. @default 32
   */
  readsInFlight?: number;
  /** Largest read (and so largest DATA frame). @default 1 MiB */
  spanBytes?: number;
  /** Extents this close share a read (the bytes between are read, not sent). @default 64 KiB */
  readGapBytes?: number;
  /** Frames queued for the socket before the reads wait for it. @default 4 MiB */
  queueBytes?: number;
}

export function resolveExtentSenderOptions(o: ExtentSenderOptions = {}): Required<ExtentSenderOptions> {
  return {
    readsInFlight: o.readsInFlight ?? 32,
    spanBytes: o.spanBytes ?? 1024 * KiB,
    readGapBytes: o.readGapBytes ?? 64 * KiB,
    queueBytes: o.queueBytes ?? 4096 * KiB,
  };
}

/** One read and the parts of it to send (offsets of the device; parts in order, disjoint, inside the read). */
export interface ReadSpan {
  offset: number;
  length: number;
  parts: DirtyExtent[];
}

/**
 * Plans the reads for a drain: each extent widened to whole hash blocks (frames
 * start on hash-block boundaries) and clipped to the disk; overlapping or
 * touching ones merged; long ones cut at `spanBytes`; neighbours closer than
 * `readGapBytes` put in one read of at most `spanBytes`.
 */
export function planReads(
  extents: readonly DirtyExtent[],
  hashBlockSize: number,
  diskSize: number,
  o: Required<ExtentSenderOptions>,
): ReadSpan[] {
  const hbs = hashBlockSize;
  const span = Math.max(hbs, Math.floor(o.spanBytes / hbs) * hbs);
  const ranges = extents
    .filter((e) => e.length > 0)
    .map((e) => ({
      start: Math.floor(e.offset / hbs) * hbs,
      end: Math.min(Math.ceil((e.offset + e.length) / hbs) * hbs, diskSize),
    }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
  const merged: { start: number; end: number }[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  const out: ReadSpan[] = [];
  for (const m of merged) {
    for (let at = m.start; at < m.end; at += span) {
      const part = { offset: at, length: Math.min(span, m.end - at) };
      const cur = out.at(-1);
      const curEnd = cur ? cur.offset + cur.length : -1;
      if (cur && part.offset - curEnd <= o.readGapBytes && part.offset + part.length - cur.offset <= span) {
        cur.length = part.offset + part.length - cur.offset;
        const lastPart = cur.parts.at(-1)!;
        if (lastPart.offset + lastPart.length === part.offset) lastPart.length += part.length;
        else cur.parts.push(part);
      } else {
        out.push({ offset: part.offset, length: part.length, parts: [{ ...part }] });
      }
    }
  }
  return out;
}

/** What one `send` did and where it waited (the continuous loop's debug log shows it per turn). */
export interface SendStats {
  spans: number;
  /** Bytes read (dirty bytes and the gaps read with them). */
  readBytes: number;
  /** Time the loop waited for the next read to complete. */
  readWaitMs: number;
  /** Time the loop waited for the socket (queue full, and the last flush). */
  socketWaitMs: number;
}

/**
 * Reads and queues the extents of drains on one stream, with buffers allocated
 * once (O_DIRECT needs aligned ones, and allocating them probes the device).
 */
export class ExtentSender {
  private readonly source: BlockSource;
  private readonly o: Required<ExtentSenderOptions>;
  private buffers: Buffer[] | undefined;

  constructor(source: BlockSource, options: ExtentSenderOptions = {}) {
    this.source = source;
    this.o = resolveExtentSenderOptions(options);
  }

  /**
   * Reads and sends `extents`; `onSent(bytes)` reports the dirty bytes whose
   * frames went to the socket (from then on they count in its unacknowledged bytes).
   * When it returns, every frame is in the stream's in-flight list.
   */
  async send(
    s: DataStream,
    extents: readonly DirtyExtent[],
    onSent?: (bytes: number) => void,
  ): Promise<SendStats> {
    const plan = planReads(extents, s.hashBlockSize, this.source.size, this.o);
    const stats: SendStats = { spans: plan.length, readBytes: 0, readWaitMs: 0, socketWaitMs: 0 };
    if (!plan.length) return stats;
    const spanBytes = Math.max(...plan.map((p) => p.length));
    if (!this.buffers || this.buffers[0]!.length < spanBytes) {
      const size = Math.max(spanBytes, this.o.spanBytes);
      this.buffers = this.source.allocBuffers(this.o.readsInFlight, Math.ceil(size / 4096) * 4096);
    }
    const free = [...this.buffers];
    const reads: Promise<{ span: ReadSpan; buf: Buffer; n: number }>[] = [];
    let next = 0;
    const startRead = () => {
      const span = plan[next];
      if (!span || !free.length) return false;
      next++;
      const buf = free.pop()!;
      const p = this.source.read(buf, span.offset, span.length).then((n) => ({ span, buf, n }));
      p.catch(() => {});
      reads.push(p);
      return true;
    };
    // Frames go to the socket from a chain of flushes beside the reads: waiting for the socket to
    // drain and waiting for reads overlap (one after the other, each was about a third of a busy turn).
    // A span's bytes are reported once a flush that began after its frames were queued has ended.
    let sending: Promise<void> = Promise.resolve();
    let queued = 0;
    // One flush for the spans whose reads completed in the same turn of the event loop (setImmediate
    // runs after them): their frames leave in one batch rather than a write per span.
    let unflushed = 0;
    let flushSoon: NodeJS.Immediate | undefined;
    const chainFlush = () => {
      clearImmediate(flushSoon);
      flushSoon = undefined;
      const bytes = unflushed;
      if (!bytes) return;
      unflushed = 0;
      sending = sending.then(async () => {
        await s.flushPending(0);
        queued -= bytes;
        onSent?.(bytes);
      });
      sending.catch(() => {}); // awaited below; a lost connection is also found by s.check()
    };
    try {
      while (startRead());
      while (reads.length) {
        s.check();
        const waitFrom = performance.now();
        const { span, buf, n } = await reads.shift()!;
        stats.readWaitMs += performance.now() - waitFrom;
        stats.readBytes += span.length;
        if (n < span.length) {
          throw new FerryError(
            "DISK_SHRANK",
            `${this.source.path} ended at ${span.offset + n} bytes while reading changed blocks (it was ${this.source.size}); restart the agent to sync the disk at its new size`,
            { details: { path: this.source.path, offset: span.offset } },
          );
        }
        let bytes = 0;
        for (const part of span.parts) {
          const at = part.offset - span.offset;
          s.emitBlocks(part.offset, buf.subarray(at, at + part.length));
          bytes += part.length;
        }
        s.endRun();
        // The frames own copies of their bytes: the buffer can be read into again at once.
        free.push(buf);
        startRead();
        queued += bytes;
        unflushed += bytes;
        flushSoon ??= setImmediate(chainFlush);
        // Bounded: past `queueBytes` waiting for the socket, the reads wait too.
        if (queued > this.o.queueBytes) {
          chainFlush();
          const from = performance.now();
          await sending;
          stats.socketWaitMs += performance.now() - from;
        }
      }
      chainFlush();
      const from = performance.now();
      await sending;
      stats.socketWaitMs += performance.now() - from;
      return stats;
    } finally {
      clearImmediate(flushSoon);
      await sending.catch(() => {});
      // Outstanding reads finish before their buffers can be reused.
      await Promise.allSettled(reads);
    }
  }
}
