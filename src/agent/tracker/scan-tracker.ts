/**
 * The scan tracker: no kernel support needed. It reads the whole disk (with
 * O_DIRECT for block devices, so never a stale block), hashes each block as
 * the replicator records it (`recordedHash`) and compares with what it knows
 * the replica holds: a baseline hash list given at construction (the hashes of
 * what was replicated) or, without one, computed at start. Blocks that differ
 * are dirty, and their new hashes become the reference for the next pass.
 *
 * Periodic passes run every `intervalMs` after the end of the previous one;
 * `scanNow()` runs one at once (a rescan or an online verify).
 */
import { FerryError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { HASH_BYTES, type HashList, blockCount, recordedHash } from "../../wire/index.ts";
import { type BlockSource, type DirectMode, openBlockSource } from "../disk/block-source.ts";
import { DirtyBitmap } from "./bitmap.ts";
import { DirtyState } from "./dirty-state.ts";
import { type TrackedIdentity, TrackerStateStore, checkPreviousRun } from "./state.ts";
import { readBootId } from "./device.ts";
import {
  type ChangeTracker,
  DEFAULT_BLOCK_SIZE,
  type DirtyExtent,
  type TrackerGap,
  type TrackerStats,
} from "./types.ts";

export interface ScanTrackerOptions {
  devicePath: string;
  /** A directory of this tracker's own (one per tracked device). */
  stateDir: string;
  /** @default baseline.hashBlockSize, else 64 KiB */
  blockSize?: number;
  /** Hashes of what the replica holds. Without it, start() hashes the disk and changes before start are a gap. */
  baseline?: HashList;
  /** Pause between the end of a pass and the start of the next; 0 disables periodic passes. @default 60000 */
  intervalMs?: number;
  /** @default "auto" (O_DIRECT for block devices) */
  direct?: DirectMode;
  logger?: Logger;
}

export interface ScanReport {
  startedAt: string;
  durationMs: number;
  bytesRead: number;
  /** Blocks whose hash differed from the reference (now dirty). */
  changedBlocks: number;
  changedBytes: number;
}

const CHUNK = 1024 * 1024;

/**
 * Reads `source` and calls `onChanged` for each block whose recorded hash
 * differs from `known` (32 bytes per block; blocks past its end always differ),
 * updating `known` in place when it is long enough.
 */
export async function scanForChanges(
  source: BlockSource,
  known: Buffer,
  blockSize: number,
  onChanged: (block: number, bytes: number) => void,
): Promise<{ bytesRead: number }> {
  const size = source.size;
  const chunk = Math.max(CHUNK, blockSize);
  const [a, b] = source.allocBuffers(2, chunk);
  let bufs = [a!, b!];
  let next = source.read(bufs[0]!, 0, chunk);
  let bytesRead = 0;
  for (let offset = 0; offset < size; offset += chunk) {
    const n = await next;
    const cur = bufs[0]!;
    bufs = [bufs[1]!, cur];
    next = offset + chunk < size ? source.read(bufs[0]!, offset + chunk, chunk) : Promise.resolve(0);
    bytesRead += n;
    for (let at = 0; at < n; at += blockSize) {
      const block = (offset + at) / blockSize;
      const hash = recordedHash(cur.subarray(at, Math.min(at + blockSize, n)));
      const ref = block * HASH_BYTES;
      if (ref + HASH_BYTES <= known.length) {
        if (hash.equals(known.subarray(ref, ref + HASH_BYTES))) continue;
        hash.copy(known, ref);
      }
      onChanged(block, Math.min(blockSize, n - at));
    }
    if (n < Math.min(chunk, size - offset)) {
      await next;
      throw new FerryError("DISK_SHRANK", `${source.path} ended at ${offset + n} bytes, expected ${size}`, {
        details: { path: source.path },
      });
    }
  }
  await next;
  return { bytesRead };
}

export class ScanTracker implements ChangeTracker {
  readonly kind = "scan" as const;
  readonly blockSize: number;
  private readonly opts: ScanTrackerOptions & { intervalMs: number };
  private readonly store: TrackerStateStore;
  private readonly dirty: DirtyState;
  private known: Buffer | undefined;
  private size = 0;
  private identity: TrackedIdentity | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ScanReport> | undefined;
  private state: "new" | "running" | "stopped" = "new";
  private lastRate = 0;
  private lastPassStart = 0;

  constructor(options: ScanTrackerOptions) {
    const blockSize = options.blockSize ?? options.baseline?.hashBlockSize ?? DEFAULT_BLOCK_SIZE;
    if (options.baseline && options.baseline.hashBlockSize !== blockSize) {
      throw new FerryError(
        "TRACKER_BLOCK_SIZE_MISMATCH",
        `the baseline hash list uses ${options.baseline.hashBlockSize}-byte blocks, the tracker ${blockSize}: use the same size`,
      );
    }
    this.blockSize = blockSize;
    this.opts = { ...options, intervalMs: options.intervalMs ?? 60_000 };
    this.store = new TrackerStateStore(options.stateDir);
    this.dirty = new DirtyState(options.devicePath, options.logger);
  }

  get deviceSize(): number {
    return this.size;
  }

  get gap(): TrackerGap | undefined {
    return this.dirty.gap;
  }

  async start(): Promise<void> {
    if (this.state !== "new") return;
    const source = await this.open();
    let firstPassNow = false;
    try {
      this.size = source.size;
      const identity: TrackedIdentity = {
        devicePath: this.opts.devicePath,
        device: source.kind,
        deviceSize: source.size,
        blockSize: this.blockSize,
      };
      this.identity = identity;
      await this.store.ensureDir();
      const marker = await this.store.readMarker();
      const saved = await this.store.readBitmap(source.size, this.blockSize);
      const bitmap = saved ?? new DirtyBitmap(source.size, this.blockSize);
      this.dirty.bitmap = bitmap;
      const baseline = this.opts.baseline;
      if (baseline) {
        // The reference is what the replica holds, so the first pass finds every
        // change since, whatever happened while no tracker ran.
        this.known = Buffer.alloc(blockCount(source.size, this.blockSize) * HASH_BYTES);
        baseline.hashes.copy(this.known, 0, 0, Math.min(baseline.hashes.length, this.known.length));
        if (baseline.diskSize < source.size) {
          // Blocks the replica never had (and a last block that was short) differ.
          bitmap.markRange(Math.floor(baseline.diskSize / this.blockSize) * this.blockSize, source.size);
        }
        firstPassNow = true;
      } else {
        const previous = checkPreviousRun(marker, identity, saved !== undefined, await readBootId());
        if (previous) this.dirty.setGap(previous.code, previous.reason);
        // Hash what is there now: the reference for later passes. (0xff… is no
        // block's recorded hash, so every block is hashed into place.)
        this.known = Buffer.alloc(blockCount(source.size, this.blockSize) * HASH_BYTES, 0xff);
        await scanForChanges(source, this.known, this.blockSize, () => undefined);
      }
      await this.store.clearMarker();
    } finally {
      await source.close();
    }
    this.state = "running";
    // With a baseline the first pass runs at once (even without periodic passes).
    if (firstPassNow) this.schedule(0);
    else if (this.opts.intervalMs > 0) this.schedule(this.opts.intervalMs);
  }

  private open(): Promise<BlockSource> {
    return openBlockSource(this.opts.devicePath, this.opts.direct ? { direct: this.opts.direct } : {});
  }

  private schedule(delayMs: number): void {
    if (this.state !== "running") return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const next = () => {
        if (this.opts.intervalMs > 0) this.schedule(this.opts.intervalMs);
      };
      this.scanNow().then(next, next);
    }, delayMs);
    this.timer.unref();
  }

  /** One full pass now (or the one already running): marks every changed block dirty. */
  scanNow(): Promise<ScanReport> {
    if (!this.known || !this.dirty.bitmap) return Promise.reject(new Error("scan tracker not started"));
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<ScanReport> {
    const started = performance.now();
    const startedAt = new Date().toISOString();
    let changedBlocks = 0;
    let changedBytes = 0;
    let source: BlockSource | undefined;
    try {
      source = await this.open();
      const { bytesRead } = await scanForChanges(source, this.known!, this.blockSize, (block, bytes) => {
        this.dirty.bitmap!.markRange(block * this.blockSize, bytes);
        changedBlocks++;
        changedBytes += bytes;
      });
      this.dirty.counts.scans++;
      this.dirty.counts.events += changedBlocks;
      this.dirty.counts.writeBytes += changedBytes;
      const since = this.lastPassStart ? (started - this.lastPassStart) / 1000 : 0;
      this.lastRate = since > 0 ? changedBytes / since : 0;
      this.lastPassStart = started;
      return { startedAt, durationMs: performance.now() - started, bytesRead, changedBlocks, changedBytes };
    } catch (err) {
      this.dirty.setGap("scan-failed", `a scan of ${this.opts.devicePath} failed: ${(err as Error).message}`);
      throw err;
    } finally {
      await source?.close();
    }
  }

  /** Runs a pass: every change made before the call is then in the dirty set. */
  async settle(): Promise<void> {
    if (this.state !== "running") return;
    // A pass already under way may have read a block before it changed.
    await this.running?.catch(() => undefined);
    await this.scanNow();
  }

  drain(): DirtyExtent[] {
    return this.dirty.drain();
  }

  markDirty(extents: readonly DirtyExtent[]): void {
    this.dirty.markDirty(extents);
  }

  acknowledgeGap(): void {
    this.dirty.clearGap();
  }

  /** Bytes of changed blocks found per second between the starts of the last two passes. */
  writeRate(): number {
    return this.lastRate;
  }

  stats(): TrackerStats {
    return this.dirty.stats();
  }

  async stop(): Promise<void> {
    if (this.state !== "running") {
      this.state = "stopped";
      return;
    }
    this.state = "stopped";
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    await this.store.writeBitmap(this.dirty.bitmap!);
    await this.store.writeMarker({
      version: 1,
      kind: "scan",
      ...this.identity!,
      stoppedAt: new Date().toISOString(),
      bootId: await readBootId(),
      ...(this.dirty.gap ? { gap: this.dirty.gap } : {}),
    });
  }
}
