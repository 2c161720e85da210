/**
 * Whether to compress, decided from what it buys. zstd pays when the link is
 * the bottleneck; on a fast link (a LAN, loopback) it costs the agent CPU and
 * the replicator a decompression for bytes the link would have carried anyway.
 * Which case holds is not knowable up front, and a sender cannot tell a slow
 * link from a slow receiver, so `auto` measures: it alternates between
 * compressing and not for a window each, keeps the one that moved more
 * non-zero bytes per second for a while, and probes the other again now and
 * then (disks and links change over a long sync).
 *
 * Blocks that do not shrink are sent raw whatever the choice (see block-task.ts).
 */

export type CompressionMode = "auto" | "zstd" | "none";

export interface CompressionPolicyOptions {
  mode: CompressionMode;
  /** A window lasts at least this long. @default 1000 */
  windowMs?: number;
  /** ...and until this many non-zero bytes were sent in it (at most 10 windows long). @default 8 MiB */
  windowBytes?: number;
  /** Windows on the better choice between two probes of the other. @default 10 */
  exploitWindows?: number;
  /**
   * Compressing must move this many times the bytes per second of not
   * compressing to be chosen: it also costs the replicator a decompression,
   * and on a shared machine rates are noisy. @default 1.2
   */
  margin?: number;
  /** @default performance.now */
  now?: () => number;
}

export interface CompressionChoiceStats {
  /** Latest rates measured (non-zero bytes per second) with and without compression; 0 = not yet. */
  compressedRate: number;
  rawRate: number;
  /** Windows run so far with each choice. */
  compressedWindows: number;
  rawWindows: number;
}

export class CompressionPolicy {
  private readonly mode: CompressionMode;
  private readonly windowMs: number;
  private readonly windowBytes: number;
  private readonly exploitWindows: number;
  private readonly margin: number;
  private readonly now: () => number;
  private on = true;
  private windowStart: number;
  private windowData = 0;
  /** Windows left before the next probe; a negative count means we are probing. */
  private untilProbe = 0;
  private probing = true;
  readonly stats: CompressionChoiceStats = {
    compressedRate: 0,
    rawRate: 0,
    compressedWindows: 0,
    rawWindows: 0,
  };

  constructor(o: CompressionPolicyOptions) {
    this.mode = o.mode;
    this.windowMs = o.windowMs ?? 1000;
    this.windowBytes = o.windowBytes ?? 8 * 1024 * 1024;
    this.exploitWindows = o.exploitWindows ?? 10;
    this.margin = o.margin ?? 1.2;
    this.now = o.now ?? (() => performance.now());
    this.windowStart = this.now();
  }

  /** Whether the next chunk should try zstd. */
  shouldCompress(): boolean {
    return this.mode === "zstd" || (this.mode === "auto" && this.on);
  }

  /**
   * Records `dataBytes` (non-zero bytes) handed to the sender, processed with
   * `compressed` as shouldCompress() said when it was dispatched.
   */
  record(dataBytes: number, compressed: boolean): void {
    if (this.mode !== "auto") return;
    // Chunks dispatched before the last switch belong to neither window.
    if (compressed === this.on) this.windowData += dataBytes;
    const elapsed = this.now() - this.windowStart;
    if (elapsed < this.windowMs) return;
    if (this.windowData < this.windowBytes && elapsed < 10 * this.windowMs) return;
    const rate = (this.windowData * 1000) / elapsed;
    if (this.on) {
      this.stats.compressedRate = rate;
      this.stats.compressedWindows++;
    } else {
      this.stats.rawRate = rate;
      this.stats.rawWindows++;
    }
    this.next();
    this.windowStart = this.now();
    this.windowData = 0;
  }

  private next(): void {
    const { compressedRate, rawRate } = this.stats;
    if (compressedRate === 0 || rawRate === 0) {
      // Measure each choice once before choosing.
      this.on = compressedRate === 0;
      return;
    }
    const better = compressedRate >= rawRate * this.margin;
    if (this.probing || this.untilProbe <= 0) {
      if (!this.probing) {
        // Time to probe the other choice for one window.
        this.probing = true;
        this.on = !better;
        return;
      }
      this.probing = false;
      this.untilProbe = this.exploitWindows;
    }
    this.untilProbe--;
    this.on = better;
  }
}
