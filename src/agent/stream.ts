/**
 * One data-plane connection from the agent's side, after the handshake: the
 * sender (sequence numbers, window of unacknowledged bytes, throttle, socket
 * back-pressure), the block pipeline (read ahead → zero blocks, BLAKE3 and
 * adaptive zstd on worker threads → frames, in disk order) and the answers
 * (ACK, HASHES, ERROR).
 */
import { FerryError } from "../lib/errors.ts";
import {
  MAX_HASHES_PER_REQUEST,
  type Frame,
  type FramedConnection,
  type WelcomeFrame,
} from "../wire/index.ts";
import { replicatorError } from "./client.ts";
import { type CompressionMode, CompressionPolicy } from "./compression-policy.ts";
import type { BlockSource } from "./disk/block-source.ts";
import type { Throttle } from "./throttle.ts";
import type { BlockProcessor, ChunkResult } from "./workers/block-pool.ts";
import { processChunk } from "./workers/block-task.ts";

const MiB = 1024 * 1024;

/** A Buffer over the same memory (results from workers arrive as plain Uint8Arrays). */
function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export interface StreamCounters {
  zeroBytes: number;
  /** Raw bytes sent as DATA. */
  dataBytes: number;
  compressedRawBytes: number;
  compressedBytes: number;
  /** Bytes on the wire (frames, before TLS). */
  wireBytes: number;
}

export interface SyncStalls {
  readWaitMs: number;
  windowWaitMs: number;
  socketWaitMs: number;
  throttleWaitMs: number;
  /** Waiting for the worker threads' results. */
  workerWaitMs: number;
  /** Time in zstd and in BLAKE3 (on the workers when there are any). */
  compressMs: number;
  hashMs: number;
}

export function emptyCounters(): StreamCounters {
  return { zeroBytes: 0, dataBytes: 0, compressedRawBytes: 0, compressedBytes: 0, wireBytes: 0 };
}

export function emptyStalls(): SyncStalls {
  return {
    readWaitMs: 0,
    windowWaitMs: 0,
    socketWaitMs: 0,
    throttleWaitMs: 0,
    workerWaitMs: 0,
    compressMs: 0,
    hashMs: 0,
  };
}

export interface DataStreamOptions {
  conn: FramedConnection;
  welcome: WelcomeFrame;
  source: BlockSource;
  chunkSize: number;
  hashBlockSize: number;
  windowBytes: number;
  compression: CompressionMode;
  /** Where hashing and compression of sendRange's chunks run. @default the event loop */
  blocks?: BlockProcessor;
  throttle: Throttle;
  counters: StreamCounters;
  stalls: SyncStalls;
  signal?: AbortSignal;
  /** Called when an ACK arrives. */
  onAck?: () => void;
  /** @default the replicator's interval from WELCOME, else 5000 */
  heartbeatIntervalMs?: number;
  /** @default 4 heartbeat intervals */
  idleTimeoutMs?: number;
}

/**
 * A read buffer of sendRange. Raw payloads are sent straight from it, so it is
 * read into again only when no queued frame refers to it and the socket has
 * taken the bytes of those sent (its write completed: TLS encrypted them).
 */
interface Slot {
  buf: Buffer;
  /** Frames queued and not yet handed to the connection. */
  unsent: number;
  /** The connection's byte count once its last frame was handed over. */
  sentUpTo: number;
  busy: boolean;
}

interface InFlight {
  seq: number;
  start: number;
  end: number;
  bytes: number;
}

export class DataStream {
  private readonly o: DataStreamOptions;
  private readonly conn: FramedConnection;
  private nextSeq: number;
  private ackedSeq: number;
  private inFlight: InFlight[] = [];
  private inFlightBytes = 0;
  /** End offset of the last acknowledged frame (sequential progress during an initial sync). */
  ackedEnd: number;
  private closeReason: Error | undefined;
  private wake: (() => void) | undefined;
  private hashWaiters = new Map<number, (hashes: Buffer) => void>();
  private nextRequestId = 1;
  private pending: { frame: Frame; start: number; end: number; bytes: number; slot?: Slot }[] = [];
  private readonly policy: CompressionPolicy;
  /** sendRange's read buffers (shared memory), free or holding payloads the socket has not taken yet. */
  private slots: Slot[] | undefined;
  private readonly onAbort: () => void;
  private buffers: Buffer[] | undefined;

  constructor(o: DataStreamOptions) {
    this.o = o;
    this.conn = o.conn;
    this.nextSeq = Number(o.welcome.durableSeq) + 1;
    this.ackedSeq = Number(o.welcome.durableSeq);
    this.ackedEnd = Number(o.welcome.resumeOffset);
    this.policy = new CompressionPolicy({ mode: o.compression });
    this.conn.start({
      frame: (f) => this.onFrame(f),
      close: (err) => {
        this.closeReason ??=
          err instanceof FerryError
            ? err
            : new FerryError(
                "CONNECTION_LOST",
                `lost the connection to the replicator${err ? `: ${err.message}` : ""}`,
              );
        this.wakeUp();
        for (const w of this.hashWaiters.values()) w(Buffer.alloc(0));
      },
    });
    const hb = o.heartbeatIntervalMs ?? (o.welcome.heartbeatIntervalMs || 5000);
    this.conn.heartbeat({ intervalMs: hb, idleTimeoutMs: o.idleTimeoutMs ?? hb * 4 });
    this.onAbort = () => {
      this.closeReason = new FerryError(
        "ABORTED",
        "replication stopped by a signal; progress up to the last acknowledgement is kept",
      );
      this.conn.close();
    };
    o.signal?.addEventListener("abort", this.onAbort);
  }

  private onFrame(f: Frame): void {
    if (f.type === "ACK") {
      this.ackedSeq = Number(f.seq);
      while (this.inFlight.length && this.inFlight[0]!.seq <= this.ackedSeq) {
        const done = this.inFlight.shift()!;
        this.inFlightBytes -= done.bytes;
        if (done.end > this.ackedEnd) this.ackedEnd = done.end;
      }
      this.o.onAck?.();
      this.wakeUp();
    } else if (f.type === "HASHES") {
      this.hashWaiters.get(f.requestId)?.(f.hashes);
      this.hashWaiters.delete(f.requestId);
    } else if (f.type === "ERROR") {
      this.closeReason = replicatorError(f.code, f.message);
      this.conn.close();
    }
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Throws why the connection ended, if it did. */
  check(): void {
    if (this.closeReason) throw this.closeReason;
  }

  private async waitFor(cond: () => boolean): Promise<void> {
    while (!cond()) {
      this.check();
      await new Promise<void>((r) => (this.wake = r));
    }
    this.check();
  }

  get hashBlockSize(): number {
    return this.o.hashBlockSize;
  }

  /** Bytes sent and not yet acknowledged. */
  get unackedBytes(): number {
    return this.inFlightBytes;
  }

  /** Ranges sent but not acknowledged: after a lost connection they must be sent again. */
  unacked(): { start: number; end: number }[] {
    return [...this.inFlight, ...this.pending]
      .filter((f) => f.end > f.start)
      .map((f) => ({ start: f.start, end: f.end }));
  }

  private async send(frame: Frame, start: number, end: number, rawBytes: number): Promise<void> {
    const { stalls, counters } = this.o;
    let t = performance.now();
    await this.waitFor(
      () => this.inFlightBytes + rawBytes <= this.o.windowBytes || this.inFlight.length === 0,
    );
    stalls.windowWaitMs += performance.now() - t;
    t = performance.now();
    await this.o.throttle.take(frame.type === "DATA" ? frame.payload.length + 64 : 64, this.o.signal);
    stalls.throttleWaitMs += performance.now() - t;
    this.check();
    if ("seq" in frame) {
      this.inFlight.push({ seq: Number(frame.seq), start, end, bytes: rawBytes });
      this.inFlightBytes += rawBytes;
    }
    const before = this.conn.bytesSent;
    const ok = this.conn.send(frame);
    counters.wireBytes += this.conn.bytesSent - before;
    if (!ok) {
      t = performance.now();
      await this.conn.drain();
      stalls.socketWaitMs += performance.now() - t;
    }
    this.check();
  }

  /** Sends queued frames until at most `keep` remain (a little queue keeps the pipe full). */
  async flushPending(keep: number): Promise<void> {
    while (this.pending.length > keep) {
      const p = this.pending[0]!;
      await this.send(p.frame, p.start, p.end, p.bytes);
      this.pending.shift();
      if (p.slot) {
        p.slot.unsent--;
        p.slot.sentUpTo = this.conn.bytesSent;
      }
    }
  }

  private queue(frame: Frame, start: number, end: number, bytes: number, slot?: Slot): void {
    this.pending.push({ frame, start, end, bytes, ...(slot ? { slot } : {}) });
    if (slot) slot.unsent++;
  }

  /** Whether a slot can be read into again. */
  private reusable(slot: Slot): boolean {
    if (slot.busy || slot.unsent > 0) return false;
    // Bytes whose write completed: everything handed over but what the stream still holds.
    return this.conn.bytesSent - this.conn.writableLength >= slot.sentUpTo;
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
  async flush(): Promise<void> {
    this.endRun();
    await this.flushPending(0);
  }

  /** Sends a BARRIER and returns its sequence number. */
  async barrier(barrierId: number, flags: number): Promise<number> {
    await this.flush();
    const seq = this.nextSeq++;
    await this.send(
      {
        type: "BARRIER",
        seq: BigInt(seq),
        barrierId: BigInt(barrierId),
        flags,
        timestampMs: BigInt(Date.now()),
      },
      0,
      0,
      0,
    );
    return seq;
  }

  async waitAcked(seq: number): Promise<void> {
    await this.waitFor(() => this.ackedSeq >= seq);
  }

  /** The hashes the replicator recorded for `count` blocks from `firstBlock` (after all frames sent before). */
  async requestHashes(firstBlock: number, count: number): Promise<Buffer> {
    if (count < 1 || count > MAX_HASHES_PER_REQUEST) throw new RangeError(`hash request of ${count} blocks`);
    this.check();
    const requestId = this.nextRequestId++;
    const answer = new Promise<Buffer>((resolve) => this.hashWaiters.set(requestId, resolve));
    this.conn.send({ type: "HASH_REQUEST", requestId, firstBlock: BigInt(firstBlock), count });
    const hashes = await answer;
    this.check();
    if (hashes.length !== count * 32) {
      throw new FerryError(
        "BAD_HASHES",
        `the replicator answered ${hashes.length / 32} hashes for ${count} blocks`,
      );
    }
    return hashes;
  }

  close(): void {
    this.o.signal?.removeEventListener("abort", this.onAbort);
    this.conn.close();
  }
}
