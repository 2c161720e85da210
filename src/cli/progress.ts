/**
 * Progress of long work: a redrawn bar on a terminal (bytes, rate, ETA), or a
 * plain line every few seconds otherwise; `--json` callers print events instead.
 */
import type { Writable } from "node:stream";
import { formatBytes, formatDuration, formatRate } from "../lib/units.ts";

export interface ProgressState {
  label: string;
  done: number;
  total: number;
  /** Extra text after the figures (e.g. "acked 1.2 GiB"). */
  note?: string;
}

export class ProgressPrinter {
  private readonly stream: Writable;
  private readonly tty: boolean;
  private readonly started = performance.now();
  private lastPlain = 0;
  private lastLen = 0;
  private startDone: number | undefined;

  constructor(stream: Writable, tty: boolean) {
    this.stream = stream;
    this.tty = tty;
  }

  update(p: ProgressState): void {
    this.startDone ??= p.done;
    const secs = (performance.now() - this.started) / 1000;
    const rate = secs > 0 ? (p.done - this.startDone) / secs : 0;
    const eta = rate > 0 ? (p.total - p.done) / rate : NaN;
    const pct = p.total > 0 ? (100 * p.done) / p.total : 100;
    const figures = `${formatBytes(p.done)} / ${formatBytes(p.total)}  ${formatRate(rate)}  ETA ${formatDuration(eta)}${p.note ? `  ${p.note}` : ""}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * pct) / 100);
      const line = `${p.label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct.toFixed(1).padStart(5)}%  ${figures}`;
      this.stream.write(`\r${line}${" ".repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
    } else {
      const now = performance.now();
      if (now - this.lastPlain < 5000 && p.done < p.total) return;
      this.lastPlain = now;
      this.stream.write(`${p.label}: ${pct.toFixed(1)}%  ${figures}\n`);
    }
  }

  done(): void {
    if (this.tty && this.lastLen > 0) this.stream.write("\n");
    this.lastLen = 0;
  }
}
