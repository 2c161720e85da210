/**
 * The eBPF tracker: bpftrace follows completed writes, write-zeroes and
 * discards of the device (bpftrace.ts) and every one marks its blocks dirty.
 *
 * It knows when it may have missed something, and says so in `gap`:
 * - bpftrace printed "Lost N events", or output the parser cannot read;
 * - the tracer exited (it is restarted, with a growing delay; the gap stays);
 * - the previous run did not stop cleanly, the machine rebooted since, or the
 *   device's own write counters moved while no tracker ran (state.ts, and the
 *   counter check below).
 */
import { FerryError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type BlockSource, openBlockSource } from "../disk/block-source.ts";
import { DirtyBitmap } from "./bitmap.ts";
import { Tracer, buildScript, ensureTracefs } from "./bpftrace.ts";
import {
  type IoCounters,
  type TrackedDevice,
  readBootId,
  readIoCounters,
  readSectorCountersSync,
  resolveTrackedDevice,
} from "./device.ts";
import { addGap } from "./gap.ts";
import { RateMeter } from "./rate.ts";
import { type CounterSnapshot, CounterReconciler } from "./reconcile.ts";
import { type TrackedIdentity, TrackerStateStore, checkPreviousRun } from "./state.ts";
import type { TraceEvent } from "./trace-parser.ts";
import {
  type ChangeTracker,
  DEFAULT_BLOCK_SIZE,
  type DirtyExtent,
  type TrackerGap,
  type TrackerGapCode,
  type TrackerStats,
} from "./types.ts";

export interface EbpfTrackerOptions {
  devicePath: string;
  /** A directory of this tracker's own (one per tracked device). */
  stateDir: string;
  /** @default 64 KiB */
  blockSize?: number;
  /** @default "bpftrace" (found on PATH) */
  bpftracePath?: string;
  /** Perf ring buffer pages per CPU, a power of two. @default 1024 (4 MiB per CPU) */
  ringBufferPages?: number;
  /** How often the dirty bitmap is saved while running (informative after a crash). @default 30000 */
  persistIntervalMs?: number;
  /** Time allowed for bpftrace to attach and the self-test read to be seen. @default 20000 */
  startTimeoutMs?: number;
  /** First delay before restarting a tracer that died; doubles up to 30 s. @default 1000 */
  restartDelayMs?: number;
  /** How often the traced sectors are checked against the kernel's counters (reconcile.ts). @default 1000 */
  reconcileIntervalMs?: number;
  logger?: Logger;
}

export function resolveEbpfOptions(o: EbpfTrackerOptions): Required<Omit<EbpfTrackerOptions, "logger">> & {
  logger: Logger | undefined;
} {
  return {
    devicePath: o.devicePath,
    stateDir: o.stateDir,
    blockSize: o.blockSize ?? DEFAULT_BLOCK_SIZE,
    bpftracePath: o.bpftracePath ?? "bpftrace",
    ringBufferPages: o.ringBufferPages ?? 1024,
    persistIntervalMs: o.persistIntervalMs ?? 30_000,
    startTimeoutMs: o.startTimeoutMs ?? 20_000,
    restartDelayMs: o.restartDelayMs ?? 1000,
    reconcileIntervalMs: o.reconcileIntervalMs ?? 1000,
    logger: o.logger,
  };
}

const SECTOR = 512;
const STALL_MS = 5000;
/** Slack around a counter read inside which a completion may or may not have been counted yet. */
const COUNTER_MARGIN_NS = 2_000_000n;
/**
 * The same for the running check, whose reads are synchronous and short. The
 * kernel counts a completion a few instructions after tracing it; a completion
 * delayed longer than this between the two can only cause a false alarm if it
 * falls on the base read.
 */
const RECONCILE_MARGIN_NS = 50_000;

interface Waiter {
  after: bigint;
  resolve(): void;
}

export class EbpfTracker implements ChangeTracker {
  readonly kind = "ebpf" as const;
  readonly blockSize: number;
  private readonly opts: ReturnType<typeof resolveEbpfOptions>;
  private readonly store: TrackerStateStore;
  private device: TrackedDevice | undefined;
  private bitmap: DirtyBitmap | undefined;
  private tracer: Tracer | undefined;
  /** The tracer whose attachment a probe read proved; only then does a gap end. */
  private verified: Tracer | undefined;
  private currentGap: TrackerGap | undefined;
  private readonly rate = new RateMeter();
  private readonly counts: TrackerStats = {
    events: 0,
    writeBytes: 0,
    discardBytes: 0,
    lostEvents: 0,
    dirtyBytes: 0,
    restarts: 0,
    scans: 0,
  };
  /** Write/discard events with their kernel times, kept only during the start-up counter check. */
  private recording: { timeNs: bigint; sectors: number; discard: boolean }[] | undefined;
  private probeWaiters: Waiter[] = [];
  private readyWaiter: (() => void) | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly reconciler = new CounterReconciler(RECONCILE_MARGIN_NS);
  private reconciling: Promise<void> | undefined;
  private probe: { source: BlockSource; buffer: Buffer } | undefined;
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
    this.restartDelay = this.opts.restartDelayMs;
  }

  get deviceSize(): number {
    return this.device?.size ?? 0;
  }

  get gap(): TrackerGap | undefined {
    return this.currentGap;
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
      clearInterval(this.reconcileTimer);
      await this.tracer?.stop(1000);
      await this.probe?.source.close();
      this.probe = undefined;
      throw err;
    }
  }

  private async startInner(): Promise<void> {
    const device = await resolveTrackedDevice(this.opts.devicePath);
    this.device = device;
    const identity = this.identity(device);
    await this.store.ensureDir();
    const marker = await this.store.readMarker();
    const saved = await this.store.readBitmap(device.size, this.blockSize);
    const previous = checkPreviousRun(marker, identity, saved !== undefined, await readBootId());
    this.bitmap = previous || !saved ? new DirtyBitmap(device.size, this.blockSize) : saved;
    if (previous?.since)
      this.currentGap = { code: previous.code, reason: previous.reason, since: previous.since };
    else if (previous) this.setGap(previous.code, previous.reason);
    // From here on a crash must be visible to the next start.
    await this.store.clearMarker();

    const tracefs = await ensureTracefs();
    if (!tracefs.ok) throw new FerryError("TRACKER_EBPF_UNAVAILABLE", tracefs.reason);
    this.recording = previous ? undefined : [];
    await this.launchTracer();
    if (!previous && marker?.counters) await this.checkCountersSince(marker.counters);
    this.recording = undefined;
    await this.reconcile(); // takes the base for the counter check, when the device allows
    this.persistTimer = setInterval(() => void this.persistNow(), this.opts.persistIntervalMs);
    this.persistTimer.unref();
    // Every CPU prints a tick each second: silence means a stuck tracer (or a stopped one).
    this.watchdog = setInterval(() => {
      const silent = performance.now() - this.lastOutputAt;
      if (this.watching() && silent > STALL_MS) {
        this.setGap(
          "tracer-exited",
          `the tracer printed nothing for ${Math.round(silent / 1000)} s (it ticks every second)`,
        );
      }
    }, 1000);
    this.watchdog.unref();
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.opts.reconcileIntervalMs);
    this.reconcileTimer.unref();
  }

  /** Checks the sectors traced against the kernel's counters (reconcile.ts); a shortfall is a gap. */
  private reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce()
      .catch((err: unknown) => {
        if (this.watching())
          this.setGap(
            "lost-events",
            `the check against the kernel's counters failed: ${(err as Error).message}`,
          );
      })
      .finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.watching()) return;
    if (!(await readIoCounters(this.device!))?.accounting) return; // nothing to check against
    // Until a base is taken (a read with no completion near it), try a few reads in a row.
    for (let attempt = 0; attempt < (this.reconciler.armed ? 1 : 10); attempt++) {
      const tA = Number(process.hrtime.bigint());
      const counters = readSectorCountersSync(this.device!);
      const tB = Number(process.hrtime.bigint());
      if (!counters) return;
      if (!(await this.catchUp(5000))) {
        if (this.watching())
          this.setGap(
            "tracer-exited",
            "the tracer did not report a probe read: it may have stopped seeing I/O",
          );
        return;
      }
      if (!this.watching()) return;
      this.checkCounters({ tA, tB, ...counters });
      if (this.reconciler.armed) return;
    }
  }

  private checkCounters(snapshot: CounterSnapshot): void {
    const missed = this.reconciler.check(snapshot);
    if (missed) {
      this.counts.lostEvents++;
      this.setGap(
        "lost-events",
        `the kernel completed ${missed.writeSectors} written and ${missed.discardSectors} discarded sectors that the tracer did not report`,
      );
      this.reconciler.reset();
    }
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
    const seen = await this.probeRead(deadline);
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
    this.reconciler.reset();
  }

  /** Reads the device's first logical block with O_DIRECT and waits until the tracer reports it. */
  private async probeRead(timeoutMs: number): Promise<boolean> {
    const after = process.hrtime.bigint();
    const seen = new Promise<void>((resolve) => this.probeWaiters.push({ after, resolve }));
    if (!this.probe) {
      const source = await openBlockSource(this.opts.devicePath);
      this.probe = { source, buffer: source.allocBuffers(1, 4096)[0]! };
    }
    await this.probe.source.read(this.probe.buffer, 0, 4096);
    return (await Promise.race([seen.then(() => true), sleep(timeoutMs, false)])) === true;
  }

  /**
   * Returns once every completion that happened before the call is in the
   * bitmap: two probe reads in a row. bpftrace drains all its per-CPU buffers
   * that are ready in each poll round, so a completion before the first probe
   * is printed in that probe's round at the latest, and that round's lines all
   * precede the second probe's line in the pipe.
   */
  private async catchUp(timeoutMs: number): Promise<boolean> {
    return (await this.probeRead(timeoutMs)) && (await this.probeRead(timeoutMs));
  }

  async settle(): Promise<void> {
    if (this.state !== "running") return;
    if (!this.watching()) {
      this.setGap("tracer-exited", "the tracer is not running");
      return;
    }
    // Catches up (probe reads) and checks the counters.
    await this.reconcile();
    await this.reconcile();
  }

  /**
   * Proves no write completed on the device between the clean stop and the
   * tracer attaching: the kernel's completed-sector counters now must equal
   * those saved at stop plus the sectors of the completions the tracer saw
   * before the counters were read. A completion too close to the read to tell
   * whether it was counted makes us try again; if it never settles, the start
   * reports a gap (a rescan too many, never a write missed).
   */
  private async checkCountersSince(atStop: IoCounters): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const tA = process.hrtime.bigint();
      const now = await readIoCounters(this.device!);
      const tB = process.hrtime.bigint();
      if (!now || !now.accounting || !atStop.accounting) {
        this.setGap(
          "written-while-stopped",
          "the device's I/O accounting is off: writes while stopped cannot be ruled out",
        );
        return;
      }
      // Every completion traced before tB has been delivered once later probe reads are.
      if (!(await this.catchUp(5000))) {
        this.setGap("tracer-exited", "the tracer stopped reporting during the start-up check");
        return;
      }
      const events = this.recording ?? [];
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
      const unseenWrites = now.writeSectors - atStop.writeSectors - writes;
      const unseenDiscards = now.discardSectors - atStop.discardSectors - discards;
      if (unseenWrites !== 0 || unseenDiscards !== 0) {
        this.setGap(
          "written-while-stopped",
          `${unseenWrites} written and ${unseenDiscards} discarded sectors completed on the device while no tracker ran`,
        );
      }
      return;
    }
    this.setGap(
      "written-while-stopped",
      "the device was too busy at start to prove nothing was written while stopped",
    );
  }

  private onEvent(e: TraceEvent): void {
    this.lastOutputAt = performance.now();
    switch (e.kind) {
      case "io": {
        const device = this.device!;
        const offset = (e.sector - device.startSector) * SECTOR;
        const bytes = e.sectors * SECTOR;
        this.bitmap!.markRange(offset, bytes);
        this.counts.events++;
        if (e.op === "discard") this.counts.discardBytes += bytes;
        else {
          this.counts.writeBytes += bytes;
          this.rate.add(bytes);
        }
        const deliveryMs = Number(process.hrtime.bigint() - e.timeNs) / 1e6;
        if (deliveryMs > this.maxDeliveryMs) this.maxDeliveryMs = deliveryMs;
        this.reconciler.record(Number(e.timeNs), e.sectors, e.op === "discard");
        this.recording?.push({ timeNs: e.timeNs, sectors: e.sectors, discard: e.op === "discard" });
        return;
      }
      case "probe":
        this.probeWaiters = this.probeWaiters.filter((w) => {
          if (e.timeNs < w.after) return true;
          w.resolve();
          return false;
        });
        return;
      case "ready":
        this.readyWaiter?.();
        this.readyWaiter = undefined;
        return;
      case "attached":
      case "tick":
        return;
      case "lost":
        this.counts.lostEvents += e.count;
        this.setGap("lost-events", `the tracer lost ${e.count} events (its ring buffer overflowed)`);
        return;
      case "unknown":
        this.setGap(
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
    this.setGap(
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
      this.counts.restarts++;
      this.launchTracer().then(
        () => {
          this.restartDelay = this.opts.restartDelayMs;
        },
        (err: unknown) => {
          this.setGap("tracer-exited", `restarting the tracer failed: ${(err as Error).message}`);
          this.restartDelay = Math.min(this.restartDelay * 2, 30_000);
          if (this.state === "running") this.scheduleRestart();
        },
      );
    }, this.restartDelay);
    this.restartTimer.unref();
  }

  private setGap(code: TrackerGapCode, reason: string): void {
    const fresh = this.currentGap === undefined;
    this.currentGap = addGap(this.currentGap, code, reason);
    if (fresh)
      this.opts.logger?.warn("change tracking gap: a rescan is needed", {
        device: this.opts.devicePath,
        code,
        reason,
      });
  }

  drain(): DirtyExtent[] {
    return this.bitmap?.drain() ?? [];
  }

  markDirty(extents: readonly DirtyExtent[]): void {
    for (const x of extents) this.bitmap?.markRange(x.offset, x.length);
  }

  acknowledgeGap(): void {
    this.currentGap = undefined;
    // A gap is only over while a tracer is watching: otherwise it starts again now.
    if (this.state === "running" && !this.watching()) {
      this.setGap("tracer-exited", "the tracer is not running");
    }
  }

  writeRate(): number {
    return this.rate.perSecond();
  }

  stats(): TrackerStats {
    return { ...this.counts, dirtyBytes: this.bitmap?.dirtyBytes ?? 0, maxDeliveryMs: this.maxDeliveryMs };
  }

  private persistNow(): Promise<void> {
    const bitmap = this.bitmap;
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
    clearInterval(this.reconcileTimer);
    await this.reconciling;
    clearTimeout(this.restartTimer);
    // Completions up to the tracer's exit are in the bitmap once stop() returns.
    await this.tracer?.stop();
    await this.probe?.source.close();
    this.probe = undefined;
    await this.persisting;
    const device = this.device!;
    await this.store.writeBitmap(this.bitmap!);
    const counters = await readIoCounters(device);
    await this.store.writeMarker({
      version: 1,
      kind: "ebpf",
      ...this.identity(device),
      stoppedAt: new Date().toISOString(),
      bootId: await readBootId(),
      ...(counters ? { counters } : {}),
      ...(this.currentGap ? { gap: this.currentGap } : {}),
    });
    this.state = "stopped";
  }
}

function sleep<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(value), ms);
    t.unref();
  });
}
