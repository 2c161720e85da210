/** Options of the eBPF tracker, and their defaults. */
import type { Logger } from "../../lib/log.ts";
import { DEFAULT_BLOCK_SIZE } from "./types.ts";

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
  /** How often the traced sectors are checked against the kernel's counters while the device is idle (reconcile.ts). @default 1000 */
  reconcileIntervalMs?: number;
  /**
   * The same while the device is written (the tracer reported writes since the last check, or
   * requests are open). A completion that never reached BPF is found by the check after it, so
   * this bounds the lag it adds. @default 200
   */
  reconcileBusyIntervalMs?: number;
  logger?: Logger;
}

export type ResolvedEbpfOptions = Required<Omit<EbpfTrackerOptions, "logger">> & {
  logger: Logger | undefined;
};

export function resolveEbpfOptions(o: EbpfTrackerOptions): ResolvedEbpfOptions {
  const reconcileIntervalMs = o.reconcileIntervalMs ?? 1000;
  return {
    devicePath: o.devicePath,
    stateDir: o.stateDir,
    blockSize: o.blockSize ?? DEFAULT_BLOCK_SIZE,
    bpftracePath: o.bpftracePath ?? "bpftrace",
    ringBufferPages: o.ringBufferPages ?? 1024,
    persistIntervalMs: o.persistIntervalMs ?? 30_000,
    startTimeoutMs: o.startTimeoutMs ?? 20_000,
    restartDelayMs: o.restartDelayMs ?? 1000,
    reconcileIntervalMs,
    reconcileBusyIntervalMs: Math.min(o.reconcileBusyIntervalMs ?? 200, reconcileIntervalMs),
    logger: o.logger,
  };
}

/** A promise of `value` after `ms` (never keeps the process alive). */
export function sleep<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(value), ms);
    t.unref();
  });
}
