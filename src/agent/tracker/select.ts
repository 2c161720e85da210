/**
 * Picks the best change tracker for a device and says why: the eBPF tracker
 * when it can run here and proves it sees this device's I/O, else the scan
 * tracker. `prefer` overrides (`--tracker`).
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { DirectMode } from "../disk/block-source.ts";
import type { HashList } from "../../wire/index.ts";
import { ensureTracefs, findBpftrace } from "./bpftrace.ts";
import { EbpfTracker, type EbpfTrackerOptions } from "./ebpf-tracker.ts";
import { ScanTracker } from "./scan-tracker.ts";
import type { ChangeTracker } from "./types.ts";

export type TrackerPreference = "auto" | "ebpf" | "scan";

export interface SelectTrackerOptions {
  devicePath: string;
  /** The tracker's own state directory (one per device). */
  stateDir: string;
  /** @default "auto" */
  prefer?: TrackerPreference;
  /** @default 64 KiB */
  blockSize?: number;
  /** Hashes of what the replica holds (the scan tracker's reference). */
  baseline?: HashList;
  /** Scan tracker: pause between passes. @default 60000 */
  scanIntervalMs?: number;
  direct?: DirectMode;
  /** eBPF tracker tuning (bpftrace path, ring buffer, timeouts). */
  ebpf?: Omit<EbpfTrackerOptions, "devicePath" | "stateDir" | "blockSize" | "logger">;
  logger?: Logger;
}

export interface EbpfAvailability {
  ok: boolean;
  /** What is missing, in words (empty when ok). */
  missing: string[];
  /** What was found (bpftrace version, tracefs path). */
  found: string[];
}

/**
 * Whether the eBPF tracker can follow `devicePath` here: root, a block device,
 * bpftrace, the block tracepoint in tracefs, and a self-test in which the tracer
 * sees a read of the device (a read, not a write: a probe write to a disk in
 * use could race with the filesystem).
 */
export async function checkEbpf(
  devicePath: string,
  ebpf: SelectTrackerOptions["ebpf"] = {},
): Promise<EbpfAvailability> {
  const missing: string[] = [];
  const found: string[] = [];
  if (process.platform !== "linux") missing.push(`Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push("root (eBPF programs need CAP_BPF and CAP_PERFMON)");
  try {
    if (!(await stat(devicePath)).isBlockDevice()) missing.push(`a block device (${devicePath} is a file)`);
  } catch (err) {
    missing.push(`the device (${(err as Error).message})`);
  }
  const version = await findBpftrace(ebpf.bpftracePath);
  if (version) found.push(version);
  else missing.push(`bpftrace (${ebpf.bpftracePath ?? "bpftrace"} not found: apt-get install bpftrace)`);
  if (missing.length) return { ok: false, missing, found };
  const tracefs = await ensureTracefs();
  if (!tracefs.ok) return { ok: false, missing: [tracefs.reason], found };
  found.push(`tracefs at ${tracefs.path}`);

  const dir = await mkdtemp(join(tmpdir(), "ferry-tracker-selftest-"));
  const probe = new EbpfTracker({
    ...ebpf,
    devicePath,
    stateDir: dir,
    startTimeoutMs: ebpf.startTimeoutMs ?? 15_000,
  });
  try {
    await probe.start();
    found.push("self-test: the tracer saw a read of the device");
  } catch (err) {
    missing.push(`a passing self-test (${(err as Error).message})`);
  } finally {
    await probe.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return { ok: missing.length === 0, missing, found };
}

export async function selectTracker(
  options: SelectTrackerOptions,
): Promise<{ tracker: ChangeTracker; reason: string }> {
  const prefer = options.prefer ?? "auto";
  const scan = () =>
    new ScanTracker({
      devicePath: options.devicePath,
      stateDir: options.stateDir,
      ...(options.blockSize ? { blockSize: options.blockSize } : {}),
      ...(options.baseline ? { baseline: options.baseline } : {}),
      ...(options.scanIntervalMs !== undefined ? { intervalMs: options.scanIntervalMs } : {}),
      ...(options.direct ? { direct: options.direct } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  if (prefer === "scan") {
    return { tracker: scan(), reason: "scan tracker, as requested: periodic read-and-hash of the disk" };
  }
  const availability = await checkEbpf(options.devicePath, options.ebpf);
  if (availability.ok) {
    const tracker = new EbpfTracker({
      ...options.ebpf,
      devicePath: options.devicePath,
      stateDir: options.stateDir,
      ...(options.blockSize ? { blockSize: options.blockSize } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    return {
      tracker,
      reason: `eBPF tracker${prefer === "ebpf" ? ", as requested" : ""}: completed writes and discards traced at block:block_rq_complete (${availability.found.join("; ")})`,
    };
  }
  if (prefer === "ebpf") {
    throw new FerryError(
      "TRACKER_EBPF_UNAVAILABLE",
      `the eBPF tracker cannot run for ${options.devicePath}: missing ${availability.missing.join("; ")}. Fix that, or use --tracker scan`,
      { details: { device: options.devicePath, missing: availability.missing } },
    );
  }
  return {
    tracker: scan(),
    reason: `scan tracker: the eBPF tracker is unavailable (missing ${availability.missing.join("; ")})`,
  };
}
