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
 *
 * Under heavy CPU contention the kernel can be preempted between tracing a
 * completion and counting it for longer than the margin. At an ordinary check
 * that only hides a miss for a moment (it is counted at the next one); at the
 * base it makes a false alarm (the completion is in "seen" but not in the base
 * count), then another at every new base: on a loaded 2-vCPU machine we saw a
 * `lost-events` gap every few seconds. So with `validateNs`, a base is only a
 * candidate until a read at least that much later agrees with it exactly
 * (every sector counted since is one the tracer reported); a candidate that
 * disagrees is dropped and another taken, and the difference is returned as an
 * `unconfirmed` miss: the caller places it (marks the requests open then dirty)
 * but never makes it a gap, so a real miss inside that short window is placed
 * like any other. One before any base goes unseen.
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
  /**
   * Found while confirming a base candidate: a completion counted late at the candidate, or a
   * real miss just after it; the two cannot be told apart. Placed if it can be (marking open
   * requests dirty is harmless), never a gap.
   */
  unconfirmed?: true;
}

interface Base {
  write: number;
  discard: number;
  seenWrite: number;
  seenDiscard: number;
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
  private base: Base | undefined;
  private candidate: (Base & { tB: number }) | undefined;
  private readonly validateNs: number;

  /** `validateNs` 0: a base is taken at once; else it must be confirmed by a read that much later. */
  constructor(marginNs = 2e6, validateNs = 0) {
    this.marginNs = marginNs;
    this.validateNs = validateNs;
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

  /**
   * A miss found by check() was dealt with (its sectors placed and marked
   * dirty): the base moves by it, so later checks report only new misses and
   * need no new base. A miss larger than the lower bound check() returned is
   * reported again by the next check.
   */
  absorb(m: Missed): void {
    if (!this.base) return;
    this.base.write += m.writeSectors;
    this.base.discard += m.discardSectors;
  }

  /** Forget the base (after a tracer restart or a reported miss): the next quiet check sets a new one. */
  reset(): void {
    this.base = undefined;
    this.candidate = undefined;
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
    const now = { seenWrite, seenDiscard, ambiguousWrite, ambiguousDiscard };
    if (!this.base) {
      if (this.candidate && s.tA - this.candidate.tB >= this.validateNs) {
        const c = this.candidate;
        this.candidate = undefined;
        const m = missedSince(c, s, now);
        if (!m) {
          this.base = c;
          return undefined;
        }
        // Not confirmed (a completion counted late at the candidate, or a miss just after it): another
        // candidate is taken, and the difference is reported for placing, so a real miss is not lost.
        this.takeCandidate(s, now);
        return { ...m, unconfirmed: true };
      }
      this.takeCandidate(s, now);
      return undefined;
    }
    return missedSince(this.base, s, now);
  }

  private takeCandidate(
    s: CounterSnapshot,
    now: { seenWrite: number; seenDiscard: number; ambiguousWrite: number; ambiguousDiscard: number },
  ): void {
    if (this.candidate || now.ambiguousWrite !== 0 || now.ambiguousDiscard !== 0) return;
    const c = {
      write: s.writeSectors,
      discard: s.discardSectors,
      seenWrite: now.seenWrite,
      seenDiscard: now.seenDiscard,
    };
    if (this.validateNs === 0) this.base = c;
    else this.candidate = { ...c, tB: s.tB };
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

/** Lower bounds of what was missed since `base`: ambiguous completions now are assumed counted. */
function missedSince(
  base: Base,
  s: CounterSnapshot,
  now: { seenWrite: number; seenDiscard: number; ambiguousWrite: number; ambiguousDiscard: number },
): Missed | undefined {
  const missedWrite = s.writeSectors - base.write - (now.seenWrite - base.seenWrite) - now.ambiguousWrite;
  const missedDiscard =
    s.discardSectors - base.discard - (now.seenDiscard - base.seenDiscard) - now.ambiguousDiscard;
  if (missedWrite > 0 || missedDiscard > 0) {
    return { writeSectors: Math.max(0, missedWrite), discardSectors: Math.max(0, missedDiscard) };
  }
  return undefined;
}
