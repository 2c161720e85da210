/**
 * An independent check that the tracer missed nothing: the kernel counts the
 * sectors of every completed write and discard in /sys/dev/block/M:m/stat.
 * Over any stretch of time, the sectors the tracer reported must add up to at
 * least what the kernel counted. We have seen bpftrace silently miss about one
 * completion in 50,000 under load on a loop device (two independent tracers
 * missed the same one, with no lost-event record and no recursion miss), so
 * this check is what turns such a miss into a gap.
 *
 * Timing: the kernel traces a completion just before it counts it. A counter
 * read between instants tA and tB surely includes completions traced before
 * tA - margin and surely excludes those traced after tB + margin; those in
 * between are ambiguous, and are given the benefit of the doubt (a miss is
 * only reported if even counting them all cannot explain the counters).
 *
 * The base snapshot must have no ambiguous completion: one that was counted
 * at the base would later hide a miss of its size, for good. So the base is
 * taken at the first read with none (the reads are short and the margin
 * small, so under all but the heaviest load one comes quickly); until then
 * checks cannot find misses (`armed` is false).
 */

export interface CounterSnapshot {
  /** CLOCK_MONOTONIC ns just before and just after the read (the tracer's clock). */
  tA: number;
  tB: number;
  writeSectors: number;
  discardSectors: number;
}

export interface Missed {
  writeSectors: number;
  discardSectors: number;
}

/** Completions further back than this before a check are forgotten (their sums are kept). */
const KEEP_NS = 2e9;

export class CounterReconciler {
  private readonly marginNs: number;
  private times: number[] = [];
  private sectors: number[] = [];
  private discards: boolean[] = [];
  private head = 0;
  private totalWrite = 0;
  private totalDiscard = 0;
  private base: { write: number; discard: number; seenWrite: number; seenDiscard: number } | undefined;

  constructor(marginNs = 2e6) {
    this.marginNs = marginNs;
  }

  /** Whether a base snapshot is set (checks can find misses). */
  get armed(): boolean {
    return this.base !== undefined;
  }

  /** A completion the tracer reported, with its kernel time. */
  record(timeNs: number, sectors: number, discard: boolean): void {
    this.times.push(timeNs);
    this.sectors.push(sectors);
    this.discards.push(discard);
    if (discard) this.totalDiscard += sectors;
    else this.totalWrite += sectors;
  }

  /** Forget the base (after a tracer restart or a reported miss): the next quiet check sets a new one. */
  reset(): void {
    this.base = undefined;
  }

  /**
   * Call with a counter read, once every completion traced before `tB` has
   * been delivered to record(). Returns what the tracer missed, if anything.
   */
  check(s: CounterSnapshot): Missed | undefined {
    const lo = s.tA - this.marginNs;
    const hi = s.tB + this.marginNs;
    let recentWrite = 0;
    let recentDiscard = 0;
    let ambiguousWrite = 0;
    let ambiguousDiscard = 0;
    for (let i = this.head; i < this.times.length; i++) {
      const t = this.times[i]!;
      if (t < lo) continue;
      const n = this.sectors[i]!;
      if (this.discards[i]) recentDiscard += n;
      else recentWrite += n;
      if (t <= hi) {
        if (this.discards[i]) ambiguousDiscard += n;
        else ambiguousWrite += n;
      }
    }
    const seenWrite = this.totalWrite - recentWrite;
    const seenDiscard = this.totalDiscard - recentDiscard;
    this.prune(lo - KEEP_NS);
    if (!this.base) {
      if (ambiguousWrite === 0 && ambiguousDiscard === 0) {
        this.base = { write: s.writeSectors, discard: s.discardSectors, seenWrite, seenDiscard };
      }
      return undefined;
    }
    // Lower bounds of what was missed: ambiguous completions now are assumed counted.
    const missedWrite = s.writeSectors - this.base.write - (seenWrite - this.base.seenWrite) - ambiguousWrite;
    const missedDiscard =
      s.discardSectors - this.base.discard - (seenDiscard - this.base.seenDiscard) - ambiguousDiscard;
    if (missedWrite > 0 || missedDiscard > 0) {
      return { writeSectors: Math.max(0, missedWrite), discardSectors: Math.max(0, missedDiscard) };
    }
    return undefined;
  }

  private prune(before: number): void {
    while (this.head < this.times.length && this.times[this.head]! < before) this.head++;
    if (this.head > 4096 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.sectors = this.sectors.slice(this.head);
      this.discards = this.discards.slice(this.head);
      this.head = 0;
    }
  }
}
