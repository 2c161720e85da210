/**
 * Lag, send rate and convergence of one disk in continuous mode, from samples
 * of its backlog and of the bytes sent. Pure (the clock is injected), so the
 * NOT_CONVERGING rule is tested on its own.
 *
 * NOT_CONVERGING means the replica will not catch up at this rate: the source
 * is writing, the backlog has not been empty for a whole window, and it did
 * not shrink (by 10% at least) over that window. A backlog that is large but shrinking is only
 * BACKLOG; a dirty set that stopped growing because the same blocks keep being
 * rewritten (the bitmap holds each block once) still does not converge, which
 * is why the rule looks at shrinking rather than growing.
 */

export interface ConvergenceOptions {
  /** How long the backlog must fail to shrink (and never be empty). @default 30000 */
  windowMs?: number;
  /** Window of the send rate. @default 10000 */
  rateWindowMs?: number;
  /** @default Date.now */
  now?: () => number;
}

export interface ConvergenceSample {
  /** Bytes written on the source and not yet durable on the replicator. */
  backlogBytes: number;
  /** Bytes sent so far (a counter). */
  sentBytes: number;
  /** Bytes the source writes per second now. */
  writeBytesPerSecond: number;
}

export interface ConvergenceView {
  lagMs: number;
  caughtUpAt: number;
  sendBytesPerSecond: number;
  /** Set while the backlog does not converge: for how long, and the rates that explain it. */
  notConverging?: {
    forMs: number;
    writeBytesPerSecond: number;
    sendBytesPerSecond: number;
    backlogBytes: number;
  };
}

/** Over a window, a backlog that shrank by less than this share is not converging (it would take 10+ windows). */
const MIN_SHRINK = 0.1;

interface Sample {
  t: number;
  backlog: number;
  sent: number;
}

export class ConvergenceMeter {
  private readonly windowMs: number;
  private readonly rateWindowMs: number;
  private readonly now: () => number;
  private readonly samples: Sample[] = [];
  private caughtUpAt: number;

  constructor(o: ConvergenceOptions = {}) {
    this.windowMs = o.windowMs ?? 30_000;
    this.rateWindowMs = o.rateWindowMs ?? 10_000;
    this.now = o.now ?? Date.now;
    this.caughtUpAt = this.now();
  }

  update(x: ConvergenceSample): ConvergenceView {
    const t = this.now();
    if (x.backlogBytes === 0) this.caughtUpAt = t;
    this.samples.push({ t, backlog: x.backlogBytes, sent: x.sentBytes });
    const keep = Math.max(this.windowMs, this.rateWindowMs);
    while (this.samples.length > 2 && t - this.samples[1]!.t >= keep) this.samples.shift();

    const rateFrom = this.samples.find((s) => t - s.t <= this.rateWindowMs) ?? this.samples[0]!;
    const sendBytesPerSecond = t > rateFrom.t ? ((x.sentBytes - rateFrom.sent) * 1000) / (t - rateFrom.t) : 0;
    const view: ConvergenceView = {
      lagMs: x.backlogBytes === 0 ? 0 : t - this.caughtUpAt,
      caughtUpAt: this.caughtUpAt,
      sendBytesPerSecond,
    };
    const behindMs = t - this.caughtUpAt;
    const oldest = this.samples[0]!;
    if (
      x.backlogBytes > 0 &&
      x.writeBytesPerSecond > 0 &&
      behindMs >= this.windowMs &&
      t - oldest.t >= this.windowMs
    ) {
      // Compare the low points of the window's first and last quarters: the
      // backlog saw-tooths between drains, its floor is what must come down.
      const q = this.windowMs / 4;
      const start = t - this.windowMs;
      const floor = (from: number, to: number) =>
        Math.min(...this.samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.backlog));
      const early = floor(start, start + q);
      const late = floor(t - q, t);
      if (Number.isFinite(early) && late >= early * (1 - MIN_SHRINK)) {
        view.notConverging = {
          forMs: behindMs,
          writeBytesPerSecond: x.writeBytesPerSecond,
          sendBytesPerSecond,
          backlogBytes: x.backlogBytes,
        };
      }
    }
    return view;
  }
}

/** The API's rawError for NOT_CONVERGING: what is measured, and what to do. */
export function notConvergingMessage(n: NonNullable<ConvergenceView["notConverging"]>): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  return (
    `the source writes ${mb(n.writeBytesPerSecond)} MB/s but only ${mb(n.sendBytesPerSecond)} MB/s reach the replicator; ` +
    `the backlog (${mb(n.backlogBytes)} MB) has not shrunk for ${Math.round(n.forMs / 1000)} s ` +
    `(raise bandwidthThrottling, or check the link)`
  );
}
