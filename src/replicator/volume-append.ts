/**
 * Group writes to the open segment. Continuous replication sends thousands
 * of small DATA frames a second (one 4 KiB hash block each); one positional
 * write per record, each awaited before the next, left the replicator waiting
 * on the thread pool most of the time and capped it near 20 MB/s. Appends
 * queued while a write is in flight go out together in the next one (small
 * parts copied into one buffer), in the order they were queued, so the bytes
 * on disk are exactly those of appending them one by one.
 *
 * Every append's promise settles once its bytes are written (not durable:
 * `sync` does that, after writing everything queued). Reads, syncs and seals
 * first wait for the queued writes. After a failed write every later call
 * fails too: what reached the file is unknown, and only recovery from the
 * committed length may continue.
 */
import type { AppendableObject } from "./store/object-store.ts";
import type { ByteRange } from "./store/object-store.ts";

/** Batches of small parts up to this size are copied into one reused buffer (one iovec, no fresh memory). */
const COPY_BELOW = 4 * 1024 * 1024;
/** Parts this large on average are written as they are (frames of initial sync: no copy). */
const SMALL_PART = 16 * 1024;

interface Pending {
  parts: readonly Buffer[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class BatchedAppendable implements AppendableObject {
  private readonly inner: AppendableObject;
  private queue: Pending[] = [];
  /** The running write loop (until the queue is empty). */
  private writing: Promise<void> | undefined;
  private failure: unknown;
  private queuedBytes = 0;
  /** Where small parts are copied; reused from write to write (one write at a time). */
  private scratch: Buffer | undefined;

  constructor(inner: AppendableObject) {
    this.inner = inner;
  }

  get key(): string {
    return this.inner.key;
  }

  /** Bytes appended so far, queued ones included. */
  get size(): number {
    return this.inner.size + this.queuedBytes;
  }

  append(parts: readonly Buffer[]): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ parts, resolve, reject });
      for (const p of parts) this.queuedBytes += p.length;
      this.writing ??= this.writeQueued();
    });
  }

  /** Writes batches until the queue is empty. */
  private async writeQueued(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const parts: Buffer[] = [];
        let bytes = 0;
        for (const e of batch) {
          for (const p of e.parts) {
            parts.push(p);
            bytes += p.length;
          }
        }
        try {
          if (this.failure !== undefined) throw this.failure;
          if (bytes > 0) await this.inner.append(this.gather(parts, bytes));
        } catch (err) {
          this.failure ??= err;
          for (const e of batch) e.reject(err);
          continue;
        } finally {
          this.queuedBytes -= bytes;
        }
        for (const e of batch) e.resolve();
      }
    } finally {
      this.writing = undefined;
    }
  }

  /** The parts to write: small ones copied into the scratch buffer (valid until the next write). */
  private gather(parts: Buffer[], bytes: number): Buffer[] {
    if (parts.length === 1 || bytes > COPY_BELOW || bytes / parts.length >= SMALL_PART) return parts;
    if (!this.scratch || this.scratch.length < bytes) {
      this.scratch = Buffer.allocUnsafeSlow(Math.min(COPY_BELOW, Math.max(bytes, 256 * 1024) * 2));
    }
    let at = 0;
    for (const p of parts) at += p.copy(this.scratch, at);
    return [this.scratch.subarray(0, bytes)];
  }

  /**
   * Resolves when every append queued so far was written (not those queued
   * meanwhile: a steady stream of appends does not hold it up); rejects after
   * a failed write.
   */
  private async drain(): Promise<void> {
    if (this.writing) {
      await new Promise<void>((resolve, reject) => this.queue.push({ parts: [], resolve, reject }));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  async sync(): Promise<void> {
    await this.drain();
    await this.inner.sync();
  }

  async read(range: ByteRange): Promise<Buffer> {
    await this.drain();
    return this.inner.read(range);
  }

  async seal(): Promise<void> {
    await this.drain();
    await this.inner.seal();
  }

  async close(): Promise<void> {
    await this.drain().catch(() => {});
    await this.inner.close();
  }
}
