/**
 * One data-plane connection from the agent's side, after the handshake: the
 * block pipeline (read ahead → zero blocks, BLAKE3 and adaptive zstd on
 * worker threads → frames, in disk order) on top of the sender
 * (frame-sender.ts: sequence numbers, window, throttle, back-pressure, answers).
 */
import { FerryError } from "../lib/errors.ts";
import { type CompressionMode, CompressionPolicy } from "./compression-policy.ts";
import type { BlockSource } from "./disk/block-source.ts";
import { FrameSender, type FrameSenderOptions, type Slot } from "./frame-sender.ts";
import type { BlockProcessor, ChunkResult } from "./workers/block-pool.ts";
import { processChunk } from "./workers/block-task.ts";

export { emptyCounters, emptyStalls, type StreamCounters, type SyncStalls } from "./stream-stats.ts";

const MiB = 1024 * 1024;

/** A Buffer over the same memory (results from workers arrive as plain Uint8Arrays). */
function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export interface DataStreamOptions extends FrameSenderOptions {
  source: BlockSource;
  chunkSize: number;
  hashBlockSize: number;
  compression: CompressionMode;
  /** Where hashing and compression of sendRange's chunks run. @default the event loop */
  blocks?: BlockProcessor;
}

export class DataStream extends FrameSender {
  private readonly o: DataStreamOptions;
  private readonly policy: CompressionPolicy;
  /** sendRange's read buffers (shared memory), free or holding payloads the socket has not taken yet. */
  private slots: Slot[] | undefined;
  private buffers: Buffer[] | undefined;

  constructor(o: DataStreamOptions) {
    super(o);
    this.o = o;
    this.policy = new CompressionPolicy({ mode: o.compression });
  }

  get hashBlockSize(): number {
    return this.o.hashBlockSize;
  }

  private zeroStart = -1;
  private zeroLen = 0;

  private emitZero(): void {
    if (this.zeroLen === 0) return;
    const seq = this.nextSeq++;
    this.queue(
      { type: "ZERO", seq: BigInt(seq), offset: BigInt(this.zeroStart), length: BigInt(this.zeroLen) },
      this.zeroStart,
      this.zeroStart + this.zeroLen,
      0,
    );
    this.zeroStart = -1;
    this.zeroLen = 0;
  }

  /**
   * Queues `buf` (the disk's bytes at `offset`, a whole number of hash blocks
   * except at the end of the disk) as ZERO and DATA frames, processed on the
   * event loop; the frames own their bytes, so `buf` may be reused at once.
   * Zero ranges merge with the previous call's when contiguous; call
   * `endRun()` to close them.
   */
  emitBlocks(offset: number, buf: Buffer): void {
    const compress = this.policy.shouldCompress();
    const r = processChunk({ data: buf, hashBlockSize: this.o.hashBlockSize, compress });
    this.emitProcessed(offset, buf.length, r, compress);
  }

  /**
   * Queues the frames of a processed chunk of `n` bytes at `offset`; runs left
   * in place are sent from `slot`.
   */
  private emitProcessed(offset: number, n: number, r: ChunkResult, compressed: boolean, slot?: Slot): void {
    const { counters, stalls } = this.o;
    const hbs = this.o.hashBlockSize;
    stalls.hashMs += r.hashMs;
    stalls.compressMs += r.compressMs;
    counters.compressedRawBytes += r.compressedRawBytes;
    counters.compressedBytes += r.compressedBytes;
    let data = 0;
    let run = 0;
    for (let b = 0; b < r.zero.length;) {
      const at = b * hbs;
      if (r.zero[b]) {
        const len = Math.min(hbs, n - at);
        if (this.zeroLen > 0 && this.zeroStart + this.zeroLen !== offset + at) this.emitZero();
        if (this.zeroLen === 0) this.zeroStart = offset + at;
        this.zeroLen += len;
        counters.zeroBytes += len;
        if (this.zeroLen >= 256 * MiB) this.emitZero();
        b++;
        continue;
      }
      const d = r.runs[run++];
      if (!d || d.at !== at) throw new Error(`block pipeline: no data run at ${offset + at}`);
      if (d.inPlace && !slot)
        throw new Error(`block pipeline: a raw run at ${offset + at} without its buffer`);
      this.emitZero();
      const seq = this.nextSeq++;
      this.queue(
        {
          type: "DATA",
          seq: BigInt(seq),
          offset: BigInt(offset + d.at),
          length: d.length,
          compression: d.compression,
          hashes: asBuffer(d.hashes),
          payload: d.inPlace ? slot!.buf.subarray(d.at, d.at + d.length) : asBuffer(d.payload),
        },
        offset + d.at,
        offset + d.at + d.length,
        d.length,
        d.inPlace ? slot : undefined,
      );
      data += d.length;
      b = Math.ceil((d.at + d.length) / hbs);
    }
    counters.dataBytes += data;
    this.policy.record(data, compressed);
  }

  /** Closes a pending zero range (before a gap in offsets, or at the end). */
  endRun(): void {
    this.emitZero();
  }

  /**
   * Reads [start, end) with read-ahead and streams it. `onChunk` sees the
   * offset read so far (for progress).
   */
  async sendRange(start: number, end: number, onChunk?: (readOffset: number) => void): Promise<void> {
    const { source, chunkSize } = this.o;
    const blocks = this.o.blocks;
    if (!blocks) return this.sendRangeInline(start, end, onChunk);
    // Chunks being read, processed by the workers, queued as frames, or in the socket.
    const depth = 8 + 2 * blocks.workers;
    // Aligned buffers are allocated (and probed) once per stream. Shared memory: the workers read it in place.
    this.slots ??= source
      .allocBuffers(depth, chunkSize, { shared: true })
      .map((buf) => ({ buf, unsent: 0, sentUpTo: 0, busy: false }));
    const slots = this.slots;
    type Done = { offset: number; slot: Slot; n: number; result: ChunkResult; compressed: boolean };
    // In disk order: frames leave in the order the chunks were read.
    const chunks: Promise<Done>[] = [];
    let next = start;
    const startChunk = () => {
      if (next >= end) return false;
      const slot = slots.find((x) => this.reusable(x));
      if (!slot) return false;
      slot.busy = true;
      const offset = next;
      const want = Math.min(chunkSize, end - offset);
      next += want;
      const p = source.read(slot.buf, offset, want).then(async (n) => {
        if (n < want) await this.shrank(offset);
        const compressed = this.policy.shouldCompress();
        const result = await blocks.process({
          data: slot.buf.subarray(0, n),
          hashBlockSize: this.o.hashBlockSize,
          compress: compressed,
          rawInPlace: true,
        });
        return { offset, slot, n, result, compressed };
      });
      p.catch(() => {});
      chunks.push(p);
      return true;
    };
    try {
      while (next < end || chunks.length > 0) {
        this.check();
        while (startChunk());
        if (chunks.length === 0) {
          // Every buffer holds payloads on their way out: send them and let the socket take them.
          await this.flushPending(0);
          await this.conn.drain();
          if (!slots.some((x) => this.reusable(x))) await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        const t = performance.now();
        const { offset, slot, n, result, compressed } = await chunks.shift()!;
        this.o.stalls.workerWaitMs += performance.now() - t;
        slot.busy = false;
        this.emitProcessed(offset, n, result, compressed, slot);
        onChunk?.(offset + n);
        while (startChunk());
        await this.flushPending(4);
      }
      this.endRun();
      await this.flushPending(0);
    } finally {
      // Reads and workers finish with the buffers before they can be reused or freed.
      await Promise.allSettled(chunks);
      for (const x of slots) x.busy = false;
    }
  }

  private async shrank(offset: number): Promise<never> {
    const { source } = this.o;
    const now = await source.currentSize();
    throw new FerryError(
      "DISK_SHRANK",
      `${source.path} shrank from ${source.size} to ${now} bytes (short read at offset ${offset}); what was acknowledged is kept — restart the agent to sync the disk at its new size`,
      { details: { path: source.path, size: source.size, now, offset } },
    );
  }

  /** sendRange with the work on the event loop (no worker threads). */
  private async sendRangeInline(
    start: number,
    end: number,
    onChunk?: (readOffset: number) => void,
  ): Promise<void> {
    const { source, chunkSize } = this.o;
    const readAhead = 4;
    this.buffers ??= source.allocBuffers(readAhead + 1, chunkSize);
    const free = [...this.buffers];
    const reads: Promise<{ offset: number; buf: Buffer; n: number; want: number }>[] = [];
    let next = start;
    const startRead = () => {
      if (next >= end || free.length === 0) return false;
      const offset = next;
      const buf = free.pop()!;
      const want = Math.min(chunkSize, end - offset);
      next += want;
      const p = source.read(buf, offset, want).then((n) => ({ offset, buf, n, want }));
      p.catch(() => {});
      reads.push(p);
      return true;
    };
    try {
      while (reads.length < readAhead && startRead());
      while (reads.length > 0) {
        this.check();
        const t = performance.now();
        const { offset, buf, n, want } = await reads.shift()!;
        this.o.stalls.readWaitMs += performance.now() - t;
        if (n < want) await this.shrank(offset);
        this.emitBlocks(offset, buf.subarray(0, n));
        free.push(buf);
        onChunk?.(offset + n);
        startRead();
        await this.flushPending(4);
      }
      this.endRun();
      await this.flushPending(0);
    } finally {
      // Let outstanding reads finish before their buffers can be reused or freed.
      await Promise.allSettled(reads);
    }
  }

  /** Sends everything queued (e.g. after emitBlocks). */
  /** Sends everything queued (e.g. after emitBlocks), closing a pending zero range first. */
  override async flush(): Promise<void> {
    this.endRun();
    await this.flushPending(0);
  }
}
