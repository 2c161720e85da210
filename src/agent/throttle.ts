/**
 * Bandwidth throttling as MGN's `bandwidthThrottling`: a rate in Mbps
 * (megabits per second, 0 = unlimited), applied to bytes on the wire and
 * changeable while running. A token bucket with a burst of 100 ms.
 */
export class Throttle {
  private bytesPerSecond = 0;
  private tokens = 0;
  private last = performance.now();

  constructor(mbps = 0) {
    this.setMbps(mbps);
  }

  setMbps(mbps: number): void {
    if (!Number.isFinite(mbps) || mbps < 0 || mbps > 10000) {
      throw new RangeError(`bandwidth throttling must be 0 (unlimited) to 10000 Mbps, got ${mbps}`);
    }
    this.bytesPerSecond = (mbps * 1_000_000) / 8;
    this.tokens = Math.min(this.tokens, this.burst());
  }

  get mbps(): number {
    return (this.bytesPerSecond * 8) / 1_000_000;
  }

  private burst(): number {
    return Math.max(this.bytesPerSecond / 10, 64 * 1024);
  }

  /** Waits until `bytes` may be sent. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond === 0) return;
    const now = performance.now();
    this.tokens = Math.min(this.burst(), this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.bytesPerSecond) * 1000;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, waitMs);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
