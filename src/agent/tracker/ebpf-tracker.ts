/**
 * The eBPF tracker: bpftrace follows completed writes, write-zeroes and
 * discards of the device (bpftrace.ts) and every one marks its blocks dirty.
 *
 * It knows when it may have missed something, and says so in `gap`:
 * - bpftrace printed "Lost N events", or output the parser cannot read;
 * - the tracer exited (it is restarted, with a growing delay; the gap stays);
 * - the previous run did not stop cleanly, the machine rebooted since, or the
 *   device's own write counters moved while no tracker ran (state.ts and
 *   counter-check.ts);
 * - the kernel completed sectors the tracer never reported (counter-check.ts)
 *   and the requests issued without a completion seen cannot account for
 *   them (inflight.ts); when they can, they are marked dirty instead.
 */
import { FerryError } from "../../lib/errors.ts";
import { DirtyBitmap } from "./bitmap.ts";
import { Tracer, buildScript, ensureTracefs } from "./bpftrace.ts";
import { type RecordedCompletion, RunningCounterCheck, checkWrittenWhileStopped } from "./counter-check.ts";
import type { Missed } from "./reconcile.ts";
import { type TrackedDevice, readBootId, readIoCounters, resolveTrackedDevice } from "./device.ts";
import { DirtyState } from "./dirty-state.ts";
import {
  type EbpfTrackerOptions,
  type ResolvedEbpfOptions,
  resolveEbpfOptions,
  sleep,
} from "./ebpf-options.ts";
import { InflightRequests } from "./inflight.ts";
import { ProbeReader } from "./probe.ts";
import { RateMeter } from "./rate.ts";
import { type TrackedIdentity, TrackerStateStore, checkPreviousRun } from "./state.ts";
import type { TraceEvent } from "./trace-parser.ts";
import type { ChangeTracker, DirtyExtent, TrackerGap, TrackerStats } from "./types.ts";

export { type EbpfTrackerOptions, resolveEbpfOptions } from "./ebpf-options.ts";

const SECTOR = 512;
const STALL_MS = 5000;

export class EbpfTracker implements ChangeTracker {
  readonly kind = "ebpf" as const;
  readonly blockSize: number;
  private readonly opts: ResolvedEbpfOptions;
  private readonly store: TrackerStateStore;
  private readonly dirty: DirtyState;
  private readonly probes: ProbeReader;
  private device: TrackedDevice | undefined;
  private counterCheck: RunningCounterCheck | undefined;
  private tracer: Tracer | undefined;
  /** The tracer whose attachment a probe read proved; only then does a gap end. */
  private verified: Tracer | undefined;
  private readonly rate = new RateMeter();
  private readonly inflight = new InflightRequests();
  /** Completions with their kernel times, kept only during the start-up counter check. */
  private recording: RecordedCompletion[] | undefined;
  private readyWaiter: (() => void) | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  /** The tracer's event count at the last scheduled counter check (was the device written since?). */
  private eventsAtCheck = -1;
  private lastOutputAt = 0;
  private maxDeliveryMs = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  private persisting: Promise<void> = Promise.resolve();

  constructor(options: EbpfTrackerOptions) {
    this.opts = resolveEbpfOptions(options);
    this.blockSize = this.opts.blockSize;
    this.store = new TrackerStateStore(this.opts.stateDir);
    this.dirty = new DirtyState(this.opts.devicePath, this.opts.logger);
    this.probes = new ProbeReader(this.opts.devicePath);
    this.restartDelay = this.opts.restartDelayMs;
  }

  get deviceSize(): number {
    return this.device?.size ?? 0;
  }

  get gap(): TrackerGap | undefined {
    return this.dirty.gap;
  }

  /** The bpftrace process id while it watches: attached and proved by a probe read (for tests and diagnostics). */
  get tracerPid(): number | undefined {
    return this.watching() ? this.tracer!.pid : undefined;
  }

  private watching(): boolean {
    return this.tracer !== undefined && this.tracer === this.verified && this.tracer.running;
  }

  async start(): Promise<void> {
    if (this.state !== "new") return;
    this.state = "starting";
    try {
      await this.startInner();
      this.state = "running";
    } catch (err) {
      this.state = "stopped";
      clearInterval(this.persistTimer);
      clearInterval(this.watchdog);
      clearTimeout(this.reconcileTimer);
      await this.tracer?.stop(1000);
      await this.probes.close();
      throw err;
    }
  }

  private async startInner(): Promise<void> {
    const device = await resolveTrackedDevice(this.opts.devicePath);
    this.device = device;
    this.counterCheck = new RunningCounterCheck({
      device,
      catchUp: (ms) => this.probes.catchUp(ms),
      watching: () => this.watching(),
      onGap: (code, reason) => this.dirty.setGap(code, reason),
      onMissed: () => this.dirty.counts.lostEvents++,
      place: (missed) => this.placeMiss(missed),
      settled: (beforeNs) => {
        for (const x of this.inflight.settleBefore(beforeNs, this.device!.startSector))
          this.dirty.bitmap!.markRange(x.offset, x.length);
      },
    });
    const identity = this.identity(device);
    await this.store.ensureDir();
    const marker = await this.store.readMarker();
    const saved = await this.store.readBitmap(device.size, this.blockSize);
    const previous = checkPreviousRun(marker, identity, saved !== undefined, await readBootId());
    this.dirty.bitmap = previous || !saved ? new DirtyBitmap(device.size, this.blockSize) : saved;
    if (previous?.since)
      this.dirty.restoreGap({ code: previous.code, reason: previous.reason, since: previous.since });
    else if (previous) this.dirty.setGap(previous.code, previous.reason);
    // From here on a crash must be visible to the next start.
    await this.store.clearMarker();

    const tracefs = await ensureTracefs();
    if (!tracefs.ok) throw new FerryError("TRACKER_EBPF_UNAVAILABLE", tracefs.reason);
    this.recording = previous ? undefined : [];
    await this.launchTracer();
    if (!previous && marker?.counters) {
      const gap = await checkWrittenWhileStopped({
        device,
        atStop: marker.counters,
        recorded: () => this.recording ?? [],
        catchUp: (ms) => this.probes.catchUp(ms),
      });
      if (gap) this.dirty.setGap(gap.code, gap.reason);
    }
    this.recording = undefined;
    await this.counterCheck.run(); // takes the base for the counter check, when the device allows
    this.persistTimer = setInterval(() => void this.persistNow(), this.opts.persistIntervalMs);
    this.persistTimer.unref();
    // Every CPU prints a tick each second: silence means a stuck tracer (or a stopped one).
    this.watchdog = setInterval(() => {
      const silent = performance.now() - this.lastOutputAt;
      if (this.watching() && silent > STALL_MS) {
        this.dirty.setGap(
          "tracer-exited",
          `the tracer printed nothing for ${Math.round(silent / 1000)} s (it ticks every second)`,
        );
      }
    }, 1000);
    this.watchdog.unref();
    this.scheduleReconcile();
  }

  /**
   * The next counter check: soon while the device is written (a completion the kernel did not
   * deliver to BPF costs the time until the check after it), at the idle interval otherwise.
   */
  private scheduleReconcile(): void {
    const events = this.dirty.counts.events;
    const busy = events !== this.eventsAtCheck || this.inflight.size > 0;
    this.eventsAtCheck = events;
    const ms = busy ? this.opts.reconcileBusyIntervalMs : this.opts.reconcileIntervalMs;
    this.reconcileTimer = setTimeout(() => {
      void this.counterCheck?.run().finally(() => {
        if (this.state === "running" || this.state === "starting") this.scheduleReconcile();
      });
    }, ms);
    this.reconcileTimer.unref();
  }

  private identity(device: TrackedDevice): TrackedIdentity {
    return {
      devicePath: this.opts.devicePath,
      device: `${device.major}:${device.minor}`,
      deviceSize: device.size,
      blockSize: this.blockSize,
    };
  }

  /** Spawns bpftrace, waits for its probes to attach, then proves with a read that it sees this device. */
  private async launchTracer(): Promise<void> {
    const device = this.device!;
    const range =
      device.startSector || device.traced.minor !== device.minor || device.traced.major !== device.major
        ? { startSector: device.startSector, endSector: device.startSector + device.size / SECTOR }
        : undefined;
    const script = buildScript({
      major: device.traced.major,
      minor: device.traced.minor,
      ...(range ? { range } : {}),
      probeSector: device.startSector,
    });
    this.inflight.clear(); // a new tracer: requests issued before it are covered by the gap that restarts it
    const ready = new Promise<void>((resolve) => (this.readyWaiter = resolve));
    const tracer = new Tracer(
      script,
      { bpftracePath: this.opts.bpftracePath, ringBufferPages: this.opts.ringBufferPages },
      {
        onEvent: (e) => this.onEvent(e),
        onExit: (code, signal, stderr) => this.onTracerExit(tracer, code, signal, stderr),
      },
    );
    this.tracer = tracer;
    const deadline = this.opts.startTimeoutMs;
    const failed = tracer.exited$().then(() => "exited" as const);
    const outcome = await Promise.race([
      ready.then(() => "ready" as const),
      failed,
      sleep(deadline, "timeout" as const),
    ]);
    if (outcome !== "ready") {
      const why = outcome === "timeout" ? `did not attach within ${deadline} ms` : "exited before attaching";
      await tracer.stop(1000);
      throw new FerryError(
        "TRACKER_EBPF_START_FAILED",
        `bpftrace ${why} to block:block_rq_complete for ${this.opts.devicePath}${tracer.stderrTail() ? `: ${tracer.stderrTail()}` : ""}`,
        { details: { device: this.opts.devicePath } },
      );
    }
    const seen = await this.probes.read(deadline);
    if (!seen) {
      await tracer.stop(1000);
      throw new FerryError(
        "TRACKER_EBPF_SELF_TEST_FAILED",
        `bpftrace attached but did not see a read of ${this.opts.devicePath} (${device.traced.name}): ` +
          "the device may not use request-based I/O (device-mapper, md); use the scan tracker",
        { details: { device: this.opts.devicePath } },
      );
    }
    this.verified = tracer;
    this.counterCheck!.reset();
  }

  /**
   * The counter check found completed sectors the tracer did not report: the
   * requests issued with no completion seen are what can have completed
   * unseen. All are marked dirty now (after the kernel counted the miss, so
   * its data is on the device). If they cannot account for the miss, it is a
   * gap.
   */
  private placeMiss(missed: Missed): boolean {
    const open = this.inflight.openExtents(this.device!.startSector, Number(process.hrtime.bigint()));
    const bytes = (missed.writeSectors + missed.discardSectors) * SECTOR;
    if (missed.unconfirmed) {
      // While a base is being confirmed: mark what may be a miss, quietly (most are late counting).
      for (const x of open?.extents ?? []) this.dirty.bitmap!.markRange(x.offset, x.length);
      this.opts.logger?.debug("counter base not confirmed: the requests open were marked dirty", {
        device: this.opts.devicePath,
        differenceBytes: bytes,
        markedBytes: open?.bytes ?? null,
      });
      return true;
    }
    if (!open || open.bytes < bytes) {
      this.opts.logger?.warn("missed completions cannot be placed on issued requests", {
        device: this.opts.devicePath,
        missedBytes: bytes,
        openBytes: open?.bytes ?? null,
      });
      return false;
    }
    for (const x of open.extents) this.dirty.bitmap!.markRange(x.offset, x.length);
    this.dirty.counts.placedMisses = (this.dirty.counts.placedMisses ?? 0) + 1;
    this.opts.logger?.info("completions the tracer missed were placed on issued requests and marked dirty", {
      device: this.opts.devicePath,
      missedBytes: bytes,
      markedBytes: open.bytes,
      requests: open.extents.length,
    });
    return true;
  }

  async settle(): Promise<void> {
    if (this.state !== "running") return;
    if (!this.watching()) {
      this.dirty.setGap("tracer-exited", "the tracer is not running");
      return;
    }
    // Catches up (probe reads) and checks the counters: a check that began before this call does not count.
    if (this.counterCheck!.busy) await this.counterCheck!.run();
    await this.counterCheck!.run();
  }

  private onEvent(e: TraceEvent): void {
    this.lastOutputAt = performance.now();
    switch (e.kind) {
      case "io": {
        const offset = (e.sector - this.device!.startSector) * SECTOR;
        const bytes = e.sectors * SECTOR;
        const discard = e.op === "discard";
        this.dirty.bitmap!.markRange(offset, bytes);
        const counts = this.dirty.counts;
        counts.events++;
        if (discard) counts.discardBytes += bytes;
        else {
          counts.writeBytes += bytes;
          this.rate.add(bytes);
        }
        const deliveryMs = Number(process.hrtime.bigint() - e.timeNs) / 1e6;
        if (deliveryMs > this.maxDeliveryMs) this.maxDeliveryMs = deliveryMs;
        this.counterCheck!.record(Number(e.timeNs), e.sectors, discard);
        this.inflight.completed(Number(e.timeNs), e.sector, e.sectors);
        this.recording?.push({ timeNs: e.timeNs, sectors: e.sectors, discard });
        return;
      }
      case "issue":
        this.inflight.issued(Number(e.timeNs), e.sector, e.sectors);
        return;
      case "probe":
        this.probes.seen(e.timeNs);
        return;
      case "ready":
        this.readyWaiter?.();
        this.readyWaiter = undefined;
        return;
      case "attached":
      case "tick":
        return;
      case "lost":
        this.dirty.counts.lostEvents += e.count;
        this.dirty.setGap("lost-events", `the tracer lost ${e.count} events (its ring buffer overflowed)`);
        return;
      case "unknown":
        this.dirty.setGap(
          "tracer-output",
          `the tracer printed a line Ferry cannot read: ${JSON.stringify(e.line.slice(0, 120))}`,
        );
        return;
    }
  }

  private onTracerExit(
    tracer: Tracer,
    code: number | null,
    signal: NodeJS.Signals | null,
    stderr: string,
  ): void {
    if (tracer !== this.tracer || this.state === "stopping" || this.state === "stopped") return;
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    this.dirty.setGap(
      "tracer-exited",
      `the tracer (bpftrace pid ${tracer.pid}) ended with ${how}${stderr ? `: ${stderr}` : ""}`,
    );
    this.opts.logger?.warn("change tracer exited; restarting", {
      device: this.opts.devicePath,
      code,
      signal,
    });
    if (this.state === "running") this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state !== "running") return;
      this.dirty.counts.restarts++;
      this.launchTracer().then(
        () => {
          this.restartDelay = this.opts.restartDelayMs;
        },
        (err: unknown) => {
          this.dirty.setGap("tracer-exited", `restarting the tracer failed: ${(err as Error).message}`);
          this.restartDelay = Math.min(this.restartDelay * 2, 30_000);
          if (this.state === "running") this.scheduleRestart();
        },
      );
    }, this.restartDelay);
    this.restartTimer.unref();
  }

  drain(): DirtyExtent[] {
    return this.dirty.drain();
  }

  markDirty(extents: readonly DirtyExtent[]): void {
    this.dirty.markDirty(extents);
  }

  acknowledgeGap(): void {
    this.dirty.clearGap();
    // A gap is only over while a tracer is watching: otherwise it starts again now.
    if (this.state === "running" && !this.watching())
      this.dirty.setGap("tracer-exited", "the tracer is not running");
  }

  writeRate(): number {
    return this.rate.perSecond();
  }

  stats(): TrackerStats {
    return this.dirty.stats({ maxDeliveryMs: this.maxDeliveryMs });
  }

  private persistNow(): Promise<void> {
    const bitmap = this.dirty.bitmap;
    if (!bitmap) return this.persisting;
    this.persisting = this.persisting
      .then(() => this.store.writeBitmap(bitmap))
      .catch((err: unknown) => {
        this.opts.logger?.warn("saving the dirty bitmap failed", { error: (err as Error).message });
      });
    return this.persisting;
  }

  async stop(): Promise<void> {
    if (this.state === "new" || this.state === "stopped") {
      this.state = "stopped";
      return;
    }
    this.state = "stopping";
    clearInterval(this.persistTimer);
    clearInterval(this.watchdog);
    clearTimeout(this.reconcileTimer);
    await this.counterCheck?.idle();
    clearTimeout(this.restartTimer);
    // Completions up to the tracer's exit are in the bitmap once stop() returns.
    await this.tracer?.stop();
    await this.probes.close();
    await this.persisting;
    const device = this.device!;
    await this.store.writeBitmap(this.dirty.bitmap!);
    const counters = await readIoCounters(device);
    await this.store.writeMarker({
      version: 1,
      kind: "ebpf",
      ...this.identity(device),
      stoppedAt: new Date().toISOString(),
      bootId: await readBootId(),
      ...(counters ? { counters } : {}),
      ...(this.dirty.gap ? { gap: this.dirty.gap } : {}),
    });
    this.state = "stopped";
  }
}
