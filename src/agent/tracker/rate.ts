/** Bytes per second over a sliding window of one-second buckets. */
export class RateMeter {
  private readonly buckets: number[];
  private readonly startedAt: number;
  private current = 0;
  private readonly now: () => number;

  constructor(windowSeconds = 10, now: () => number = () => performance.now()) {
    this.buckets = new Array<number>(windowSeconds).fill(0);
    this.now = now;
    this.startedAt = Math.floor(now() / 1000);
    this.current = this.startedAt;
  }

  add(bytes: number): void {
    this.advance();
    this.buckets[this.current % this.buckets.length]! += bytes;
  }

  /** Average over the window (or since creation when younger than the window). */
  perSecond(): number {
    this.advance();
    const elapsed = Math.min(this.buckets.length, this.current - this.startedAt + 1);
    let sum = 0;
    for (const b of this.buckets) sum += b;
    return sum / elapsed;
  }

  private advance(): void {
    const sec = Math.floor(this.now() / 1000);
    const steps = Math.min(sec - this.current, this.buckets.length);
    for (let i = 1; i <= steps; i++) this.buckets[(this.current + i) % this.buckets.length] = 0;
    if (sec > this.current) this.current = sec;
  }
}
