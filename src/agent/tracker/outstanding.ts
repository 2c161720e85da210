/**
 * Write, discard and write-zeroes requests issued to the device whose
 * completion the tracer has not reported yet. When the check against the
 * kernel's counters finds completions the tracer never saw (counter-check.ts),
 * the requests issued long before that are still open here are the likely
 * culprits: if they account for the missing sectors exactly, their ranges are
 * marked dirty again (they have completed by now: the kernel counted them) and
 * no rescan is needed. Anything less than an exact match is a gap.
 */

interface Open {
  sectors: number;
  timeNs: bigint;
  discard: boolean;
}

export interface OpenRequest {
  sector: number;
  sectors: number;
}

/** Requests older than this are forgotten (a rescan after any gap covers them). */
const FORGET_NS = 30_000_000_000n;

export class OutstandingRequests {
  private readonly open = new Map<number, Open>();
  private readonly max: number;
  /** Set when entries had to be dropped: no match can be trusted until a gap's rescan clears it. */
  private incomplete = false;

  constructor(max = 65_536) {
    this.max = max;
  }

  issued(sector: number, sectors: number, timeNs: bigint, discard: boolean): void {
    if (this.open.size >= this.max) {
      this.open.clear();
      this.incomplete = true;
    }
    this.open.set(sector, { sectors, timeNs, discard });
  }

  /** A (possibly partial) completion from `sector`: the rest of its request stays open. */
  completed(sector: number, sectors: number): void {
    const o = this.open.get(sector);
    if (!o) return;
    this.open.delete(sector);
    if (sectors < o.sectors) this.open.set(sector + sectors, { ...o, sectors: o.sectors - sectors });
  }

  /**
   * The open requests issued before `beforeNs` (and within the last 30 s), if
   * their sectors equal the missing ones exactly — written and discarded
   * separately; otherwise undefined.
   */
  match(
    missed: { writeSectors: number; discardSectors: number },
    beforeNs: bigint,
  ): OpenRequest[] | undefined {
    if (this.incomplete) return undefined;
    const out: OpenRequest[] = [];
    let write = 0;
    let discard = 0;
    for (const [sector, o] of this.open) {
      if (o.timeNs < beforeNs - FORGET_NS) {
        this.open.delete(sector);
        continue;
      }
      if (o.timeNs >= beforeNs) continue;
      out.push({ sector, sectors: o.sectors });
      if (o.discard) discard += o.sectors;
      else write += o.sectors;
    }
    if (!out.length || write !== missed.writeSectors || discard !== missed.discardSectors) return undefined;
    for (const r of out) this.open.delete(r.sector);
    return out;
  }

  /** Forget everything (a new tracer, or a gap whose rescan covers it all). */
  clear(): void {
    this.open.clear();
    this.incomplete = false;
  }
}
