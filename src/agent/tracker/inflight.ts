/**
 * Write requests issued and not yet seen completing: what a missed completion
 * can be. The block_rq_complete tracepoint does not reach BPF for some
 * completions (about one in 20,000–50,000 on one machine; on another, whose
 * programs' `recursion_misses` showed why, those arriving in an interrupt on
 * top of a running BPF program: docs/change-tracking.md), and every program
 * attached to it misses the same one, while block_rq_issue, which runs in the
 * submitter's context, saw every request in the same runs. So the tracer
 * reports issues too, and this set pairs them with completions by (first
 * sector, sectors).
 *
 * When the counter check finds sectors the tracer did not report, the miss is
 * one of the requests still open here (issued, no completion seen): they are
 * all marked dirty, at a time after the missed completion (the kernel had
 * counted it), so the read that follows sees its data. No full rescan.
 *
 * An open entry leaves when its completion is seen, or at a check where the
 * kernel had no request in flight: every request issued before that instant
 * had completed, so open entries issued before it are marked dirty (their data
 * is on the device) and dropped. The kernel counts a completion in its stat
 * file only when the completion runs (a softirq, late under load), after the
 * request left the in-flight count: so a miss can be found after its request
 * was settled. Settled open requests are kept (their bytes) for `SETTLED_NS`
 * and account for such a miss; they were marked dirty when settled, after
 * their data reached the device. Completions seen without an issue (a partial
 * completion, or a completion printed before its issue: the tracer's per-CPU
 * buffers are read in turn) count negative until their issue arrives, and are
 * dropped at such a check too.
 */
import type { DirtyExtent } from "./types.ts";

const SECTOR = 512;
/** How long requests settled as open still account for a miss the counters show later. */
const SETTLED_NS = 10e9;

interface Entry {
  sector: number;
  sectors: number;
  /** Issues minus completions seen. */
  count: number;
  /** Kernel time (ns) of the latest issue or completion seen for the key. */
  lastNs: number;
}

export class InflightRequests {
  private readonly open = new Map<string, Entry>();
  /** Most entries kept; past it the set is not trusted to place a miss (a full rescan instead). */
  private readonly limit: number;
  private overflowed = false;
  /** Open requests settled recently: when (the instant they were settled before) and their bytes. */
  private settled: { atNs: number; bytes: number }[] = [];

  constructor(limit = 65_536) {
    this.limit = limit;
  }

  get size(): number {
    return this.open.size;
  }

  issued(timeNs: number, sector: number, sectors: number): void {
    this.change(timeNs, sector, sectors, +1);
  }

  completed(timeNs: number, sector: number, sectors: number): void {
    this.change(timeNs, sector, sectors, -1);
  }

  private change(timeNs: number, sector: number, sectors: number, by: number): void {
    const key = `${sector}:${sectors}`;
    const e = this.open.get(key);
    if (e) {
      e.count += by;
      e.lastNs = Math.max(e.lastNs, timeNs);
      if (e.count === 0) this.open.delete(key);
      return;
    }
    if (this.open.size >= this.limit) {
      this.overflowed = true;
      return;
    }
    this.open.set(key, { sector, sectors, count: by, lastNs: timeNs });
  }

  /**
   * Requests issued and not seen completing, as device extents (`startSector`
   * subtracted), with their total bytes (those settled in the last 10 s
   * before `nowNs` included: they are dirty already). Undefined when the set
   * overflowed since it was last cleared and so cannot account for every
   * request.
   */
  openExtents(startSector: number, nowNs = Infinity): { extents: DirtyExtent[]; bytes: number } | undefined {
    if (this.overflowed) return undefined;
    const extents: DirtyExtent[] = [];
    let bytes = 0;
    this.settled = this.settled.filter((x) => x.atNs > nowNs - SETTLED_NS);
    for (const x of this.settled) bytes += x.bytes;
    for (const e of this.open.values()) {
      if (e.count <= 0) continue;
      extents.push({ offset: (e.sector - startSector) * SECTOR, length: e.sectors * SECTOR });
      bytes += e.count * e.sectors * SECTOR;
    }
    return { extents, bytes };
  }

  /**
   * The kernel had no request in flight at an instant after `beforeNs`: every
   * entry last touched before it is settled. Returns the extents of the open
   * ones (completed, the completion not seen) for marking dirty.
   */
  settleBefore(beforeNs: number, startSector: number): DirtyExtent[] {
    const out: DirtyExtent[] = [];
    let bytes = 0;
    for (const [key, e] of this.open) {
      if (e.lastNs >= beforeNs) continue;
      if (e.count > 0) {
        out.push({ offset: (e.sector - startSector) * SECTOR, length: e.sectors * SECTOR });
        bytes += e.count * e.sectors * SECTOR;
      }
      this.open.delete(key);
    }
    if (bytes) this.settled.push({ atNs: beforeNs, bytes });
    return out;
  }

  /** Forgets everything (a new tracer, or after a gap whose rescan covers the whole device). */
  clear(): void {
    this.open.clear();
    this.settled = [];
    this.overflowed = false;
  }
}
