/**
 * The sending half of a data-plane connection after the handshake: sequence
 * numbers, the window of unacknowledged bytes, the throttle, socket
 * back-pressure, the queue of frames not yet handed to the socket, and the
 * answers (ACK, HASHES, ERROR). DataStream (stream.ts) builds the frames.
 */
import { FerryError } from "../lib/errors.ts";
import {
  MAX_HASHES_PER_REQUEST,
  type Frame,
  type FramedConnection,
  type WelcomeFrame,
} from "../wire/index.ts";
import { replicatorError } from "./client.ts";
import type { StreamCounters, SyncStalls } from "./stream-stats.ts";
import type { Throttle } from "./throttle.ts";

/** The most a batch of frames holds corked before it waits for the socket like an uncorked write. */
const CORKED_BYTES = 256 * 1024;

export interface FrameSenderOptions {
  conn: FramedConnection;
  welcome: WelcomeFrame;
  windowBytes: number;
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
export interface Slot {
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

export class FrameSender {
  private readonly so: FrameSenderOptions;
  protected readonly conn: FramedConnection;
  protected nextSeq: number;
  private ackedSeq: number;
  private inFlight: InFlight[] = [];
  private inFlightBytes = 0;
  /** End offset of the last acknowledged frame (sequential progress during an initial sync). */
  ackedEnd: number;
  private closeReason: Error | undefined;
  /** Everyone waiting for an acknowledgement, window room or the end: all are woken together. */
  private wakers: (() => void)[] = [];
  private hashWaiters = new Map<number, (hashes: Buffer) => void>();
  private nextRequestId = 1;
  private pending: { frame: Frame; start: number; end: number; bytes: number; slot?: Slot }[] = [];
  /** flushPending holds the stream corked while it hands frames over without waiting. */
  private corked = false;
  private readonly onAbort: () => void;

  constructor(o: FrameSenderOptions) {
    this.so = o;
    this.conn = o.conn;
    this.nextSeq = Number(o.welcome.durableSeq) + 1;
    this.ackedSeq = Number(o.welcome.durableSeq);
    this.ackedEnd = Number(o.welcome.resumeOffset);
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
      this.so.onAck?.();
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
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }

  /** Throws why the connection ended, if it did. */
  check(): void {
    if (this.closeReason) throw this.closeReason;
  }

  private async waitFor(cond: () => boolean): Promise<void> {
    while (!cond()) {
      this.check();
      await new Promise<void>((r) => this.wakers.push(r));
    }
    this.check();
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

  protected async send(frame: Frame, start: number, end: number, rawBytes: number): Promise<void> {
    const { stalls, counters } = this.so;
    const room = () => this.inFlightBytes + rawBytes <= this.so.windowBytes || this.inFlight.length === 0;
    let t = performance.now();
    if (!room()) {
      // What is corked must leave before an acknowledgement can come back.
      this.uncork();
      await this.waitFor(room);
    }
    stalls.windowWaitMs += performance.now() - t;
    t = performance.now();
    if (this.so.throttle.mbps > 0) this.uncork();
    await this.so.throttle.take(frame.type === "DATA" ? frame.payload.length + 64 : 64, this.so.signal);
    stalls.throttleWaitMs += performance.now() - t;
    this.check();
    if ("seq" in frame) {
      this.inFlight.push({ seq: Number(frame.seq), start, end, bytes: rawBytes });
      this.inFlightBytes += rawBytes;
    }
    const before = this.conn.bytesSent;
    const ok = this.conn.send(frame);
    counters.wireBytes += this.conn.bytesSent - before;
    // Corked, the stream reports a full buffer after 16 KiB: the batch goes on up to CORKED_BYTES.
    if (!ok && (!this.corked || this.conn.writableLength >= CORKED_BYTES)) {
      this.uncork();
      t = performance.now();
      await this.conn.drain();
      stalls.socketWaitMs += performance.now() - t;
    }
    this.check();
  }

  /**
   * Sends queued frames until at most `keep` remain (a little queue keeps the pipe full).
   * The frames handed over in one go leave in one write: the continuous loop sends thousands
   * of 4 KiB frames a second, and a TLS record and a system call per frame cost ~2.5× the CPU
   * of batches (both ends, on loopback).
   */
  async flushPending(keep: number): Promise<void> {
    if (this.pending.length <= keep) return;
    this.cork();
    try {
      while (this.pending.length > keep) {
        const p = this.pending[0]!;
        await this.send(p.frame, p.start, p.end, p.bytes);
        this.pending.shift();
        if (p.slot) {
          p.slot.unsent--;
          p.slot.sentUpTo = this.conn.bytesSent;
        }
      }
    } finally {
      this.uncork();
    }
  }

  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.conn.stream.cork();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.conn.stream.uncork();
  }

  protected queue(frame: Frame, start: number, end: number, bytes: number, slot?: Slot): void {
    this.pending.push({ frame, start, end, bytes, ...(slot ? { slot } : {}) });
    if (slot) slot.unsent++;
  }

  /** Whether a slot can be read into again. */
  protected reusable(slot: Slot): boolean {
    if (slot.busy || slot.unsent > 0) return false;
    // Bytes whose write completed: everything handed over but what the stream still holds.
    return this.conn.bytesSent - this.conn.writableLength >= slot.sentUpTo;
  }

  /** Sends everything queued. */
  async flush(): Promise<void> {
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
    this.so.signal?.removeEventListener("abort", this.onAbort);
    this.conn.close();
  }
}
