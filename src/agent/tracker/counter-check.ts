/**
 * The eBPF tracker's checks against the kernel's own counters of completed
 * sectors (/sys/dev/block/M:m/stat): at start, that nothing was written while
 * no tracker ran; while running, that the tracer reported every completion
 * (reconcile.ts has the arithmetic). A shortfall is a gap, never a guess.
 */
import { type IoCounters, type TrackedDevice, readIoCounters, readSectorCountersSync } from "./device.ts";
import { sleep } from "./ebpf-options.ts";
import { CounterReconciler, type Missed } from "./reconcile.ts";
import type { TrackerGapCode } from "./types.ts";

/** Slack around a counter read inside which a completion may or may not have been counted yet. */
const COUNTER_MARGIN_NS = 2_000_000n;
/**
 * The same for the running check, whose reads are synchronous and short. The
 * kernel counts a completion a few instructions after tracing it; a completion
 * delayed longer than this between the two can only cause a false alarm if it
 * falls on the base read.
 */
const RECONCILE_MARGIN_NS = 50_000;
/** A base must be confirmed by a read this much later (reconcile.ts: late counting under CPU contention). */
const BASE_CONFIRM_NS = 5_000_000;

/** A write or discard completion the tracer reported, with its kernel time. */
export interface RecordedCompletion {
  timeNs: bigint;
  sectors: number;
  discard: boolean;
}

export type GapReport = { code: TrackerGapCode; reason: string } | undefined;

/**
 * Proves no write completed on the device between the clean stop and the
 * tracer attaching: the kernel's completed-sector counters now must equal
 * those saved at stop plus the sectors of the completions the tracer saw
 * before the counters were read. A completion too close to the read to tell
 * whether it was counted makes us try again; if it never settles, the start
 * reports a gap (a rescan too many, never a write missed).
 */
export async function checkWrittenWhileStopped(o: {
  device: TrackedDevice;
  atStop: IoCounters;
  /** Completions reported since the tracer attached. */
  recorded: () => readonly RecordedCompletion[];
  catchUp: (timeoutMs: number) => Promise<boolean>;
}): Promise<GapReport> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tA = process.hrtime.bigint();
    const now = await readIoCounters(o.device);
    const tB = process.hrtime.bigint();
    if (!now || !now.accounting || !o.atStop.accounting) {
      return {
        code: "written-while-stopped",
        reason: "the device's I/O accounting is off: writes while stopped cannot be ruled out",
      };
    }
    // Every completion traced before tB has been delivered once later probe reads are.
    if (!(await o.catchUp(5000))) {
      return { code: "tracer-exited", reason: "the tracer stopped reporting during the start-up check" };
    }
    const events = o.recorded();
    const ambiguous = events.some(
      (e) => e.timeNs >= tA - COUNTER_MARGIN_NS && e.timeNs <= tB + COUNTER_MARGIN_NS,
    );
    if (ambiguous) {
      await sleep(25, undefined);
      continue;
    }
    let writes = 0;
    let discards = 0;
    for (const e of events) {
      if (e.timeNs >= tA) continue;
      if (e.discard) discards += e.sectors;
      else writes += e.sectors;
    }
    const unseenWrites = now.writeSectors - o.atStop.writeSectors - writes;
    const unseenDiscards = now.discardSectors - o.atStop.discardSectors - discards;
    if (unseenWrites !== 0 || unseenDiscards !== 0) {
      return {
        code: "written-while-stopped",
        reason: `${unseenWrites} written and ${unseenDiscards} discarded sectors completed on the device while no tracker ran`,
      };
    }
    return undefined;
  }
  return {
    code: "written-while-stopped",
    reason: "the device was too busy at start to prove nothing was written while stopped",
  };
}

/**
 * The running check: once a second (and in settle()), the sectors traced are
 * compared with the kernel's counters. Runs one at a time.
 */
export class RunningCounterCheck {
  private readonly reconciler = new CounterReconciler(RECONCILE_MARGIN_NS, BASE_CONFIRM_NS);
  private running: Promise<void> | undefined;
  private readonly o: {
    device: TrackedDevice;
    catchUp: (timeoutMs: number) => Promise<boolean>;
    /** A verified tracer is watching now (else there is nothing to check). */
    watching: () => boolean;
    onGap: (code: TrackerGapCode, reason: string) => void;
    /** The kernel completed sectors the tracer did not report. */
    onMissed: () => void;
    /**
     * Marks dirty every request that may be the miss (issued, no completion
     * seen); false if they cannot account for it (then it is a gap).
     */
    place: (missed: Missed) => boolean;
    /** The kernel had no request in flight at an instant after `beforeNs` (inflight.ts). */
    settled: (beforeNs: number) => void;
  };

  constructor(o: RunningCounterCheck["o"]) {
    this.o = o;
  }

  /** A completion the tracer reported. */
  record(timeNs: number, sectors: number, discard: boolean): void {
    this.reconciler.record(timeNs, sectors, discard);
  }

  /** Forgets the base (a new tracer, or after a reported gap). */
  reset(): void {
    this.reconciler.reset();
  }

  /** Runs a check (or joins the one under way). */
  run(): Promise<void> {
    this.running ??= this.once()
      .catch((err: unknown) => {
        if (this.o.watching())
          this.o.onGap(
            "lost-events",
            `the check against the kernel's counters failed: ${(err as Error).message}`,
          );
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** A check is under way (it may have begun before the caller's moment). */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Waits for a check under way. */
  async idle(): Promise<void> {
    await this.running;
  }

  private async once(): Promise<void> {
    const { device } = this.o;
    if (!this.o.watching()) return;
    if (!(await readIoCounters(device))?.accounting) return; // nothing to check against
    // Until a base is taken and confirmed (reads with no completion near them), try a few reads in a row.
    for (let attempt = 0; attempt < (this.reconciler.armed ? 1 : 12); attempt++) {
      if (attempt > 0) await sleep(Math.ceil(BASE_CONFIRM_NS / 1e6), undefined);
      const tA = Number(process.hrtime.bigint());
      const counters = readSectorCountersSync(device);
      const tB = Number(process.hrtime.bigint());
      if (!counters) return;
      if (!(await this.o.catchUp(5000))) {
        if (this.o.watching())
          this.o.onGap(
            "tracer-exited",
            "the tracer did not report a probe read: it may have stopped seeing I/O",
          );
        return;
      }
      if (!this.o.watching()) return;
      const missed = this.reconciler.check({ tA, tB, ...counters });
      if (missed?.unconfirmed) {
        // A base candidate not confirmed: maybe a real miss just after it (placed), maybe a completion
        // counted late at it (nothing to place). Never a gap: the next candidate decides.
        this.o.place(missed);
      } else if (missed) {
        this.o.onMissed();
        if (this.o.place(missed)) this.reconciler.absorb(missed);
        else {
          this.o.onGap(
            "lost-events",
            `the kernel completed ${missed.writeSectors} written and ${missed.discardSectors} discarded sectors that the tracer did not report`,
          );
          this.reconciler.reset();
        }
      }
      if (counters.inFlight === 0) this.o.settled(tA);
      if (this.reconciler.armed) return;
    }
  }
}
