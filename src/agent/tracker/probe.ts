/**
 * Probe reads: the tracker reads the device's first 4 KiB with O_DIRECT and
 * waits for the tracer to report that read. One proves the tracer sees the
 * device (the self-test); two in a row prove it has delivered every
 * completion that happened before the first (catch-up).
 *
 * The kernel does not deliver every completion to BPF (inflight.ts): a probe
 * read's can be the one missed. So a probe not seen within `RETRY_MS` is read
 * again, and any probe completed after the wait began ends it: a later read
 * proves at least as much as the first.
 */
import { type BlockSource, openBlockSource } from "../disk/block-source.ts";
import { sleep } from "./ebpf-options.ts";

/** A probe read not reported within this long is read again (its completion may never reach BPF). */
const RETRY_MS = 100;

interface Waiter {
  after: bigint;
  resolve(): void;
}

export class ProbeReader {
  private readonly devicePath: string;
  private waiters: Waiter[] = [];
  private probe: { source: BlockSource; buffer: Buffer } | undefined;

  constructor(devicePath: string) {
    this.devicePath = devicePath;
  }

  /** The tracer reported a probe read that completed at `timeNs` (CLOCK_MONOTONIC). */
  seen(timeNs: bigint): void {
    this.waiters = this.waiters.filter((w) => {
      if (timeNs < w.after) return true;
      w.resolve();
      return false;
    });
  }

  /** Reads the device's first logical block with O_DIRECT and waits until the tracer reports it. */
  async read(timeoutMs: number): Promise<boolean> {
    const after = process.hrtime.bigint();
    let done = false;
    const seen = new Promise<void>((resolve) => this.waiters.push({ after, resolve })).then(
      () => (done = true),
    );
    if (!this.probe) {
      const source = await openBlockSource(this.devicePath);
      this.probe = { source, buffer: source.allocBuffers(1, 4096)[0]! };
    }
    const until = performance.now() + timeoutMs;
    for (;;) {
      await this.probe.source.read(this.probe.buffer, 0, 4096);
      const left = until - performance.now();
      if (left <= 0) return done;
      if ((await Promise.race([seen.then(() => true), sleep(Math.min(RETRY_MS, left), false)])) === true)
        return true;
      if (performance.now() >= until) return done;
    }
  }

  /**
   * Returns once every completion that happened before the call was delivered:
   * two probe reads in a row. bpftrace drains all its per-CPU buffers that are
   * ready in each poll round, so a completion before the first probe is
   * printed in that probe's round at the latest, and that round's lines all
   * precede the second probe's line in the pipe.
   */
  async catchUp(timeoutMs: number): Promise<boolean> {
    return (await this.read(timeoutMs)) && (await this.read(timeoutMs));
  }

  async close(): Promise<void> {
    await this.probe?.source.close();
    this.probe = undefined;
  }
}
