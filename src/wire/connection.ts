/**
 * The one place where frames meet a stream: wraps any Duplex (a TLS socket in
 * practice) with the decoder, the encoder, byte counters and heartbeats.
 */
import type { Duplex } from "node:stream";
import { FerryError } from "../lib/errors.ts";
import type { WireError } from "./errors.ts";
import type { Frame } from "./messages.ts";
import { type DecoderOptions, FrameDecoder } from "./parser.ts";
import { encodeFrame } from "./serializer.ts";

export interface ConnectionHandlers {
  /** Called for every decoded frame, in order. */
  frame(frame: Frame): void;
  /** The stream closed or failed (err undefined on a clean end). Called once. */
  close(err: Error | undefined): void;
}

export interface HeartbeatOptions {
  /** Send a HEARTBEAT when nothing was sent for this long. */
  intervalMs: number;
  /** Declare the peer gone when nothing was received for this long. */
  idleTimeoutMs: number;
}

export class FramedConnection {
  readonly stream: Duplex;
  bytesSent = 0;
  bytesReceived = 0;
  private readonly decoder: FrameDecoder;
  private handlers: ConnectionHandlers | undefined;
  private closed = false;
  private lastSent = Date.now();
  private lastReceived = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(stream: Duplex, options: DecoderOptions = {}) {
    this.stream = stream;
    this.decoder = new FrameDecoder(options);
  }

  /** Starts reading and delivers to `handlers`; called again, it only swaps the handlers. */
  start(handlers: ConnectionHandlers): void {
    const started = this.handlers !== undefined;
    this.handlers = handlers;
    if (started) return;
    this.stream.on("data", (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      this.lastReceived = Date.now();
      let frames: readonly Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        // Tell the peer why before hanging up: the stream cannot be resynchronised.
        const e = err as WireError;
        this.send({ type: "ERROR", code: e.code, message: e.message });
        this.stream.end();
        setTimeout(() => this.stream.destroy(), 1000).unref();
        this.finish(e);
        return;
      }
      for (const f of frames) {
        if (this.closed) return;
        this.handlers?.frame(f);
      }
    });
    this.stream.on("error", (err) => this.fail(err));
    // 'close' comes after 'error' when there is one: wait for it rather than 'end', so a TLS alert is reported.
    this.stream.on("close", () => this.finish(undefined));
  }

  /** Sends a frame; false when the stream's buffer is full (await drain()). */
  send(frame: Frame): boolean {
    if (this.closed) return false;
    const parts = encodeFrame(frame);
    let ok = true;
    if (parts.length === 1) {
      ok = this.stream.write(parts[0]);
    } else {
      this.stream.cork();
      for (const p of parts) ok = this.stream.write(p);
      this.stream.uncork();
    }
    for (const p of parts) this.bytesSent += p.length;
    this.lastSent = Date.now();
    return ok;
  }

  get writableLength(): number {
    return this.stream.writableLength;
  }

  /** Resolves when the stream can take more, or the connection closed. */
  drain(): Promise<void> {
    if (this.closed || !this.stream.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off("drain", done);
        this.stream.off("close", done);
        resolve();
      };
      this.stream.on("drain", done);
      this.stream.on("close", done);
    });
  }

  /** Keeps the connection alive and detects a silent peer (e.g. a blackholed path). */
  heartbeat(opts: HeartbeatOptions): void {
    clearInterval(this.timer);
    const tick = Math.max(50, Math.min(opts.intervalMs, opts.idleTimeoutMs) / 4);
    this.timer = setInterval(() => {
      const now = Date.now();
      // While we hold reading back (our own back-pressure), the peer's silence is ours: not a dead path.
      if (this.stream.isPaused()) this.lastReceived = now;
      if (now - this.lastReceived > opts.idleTimeoutMs) {
        this.fail(
          new FerryError(
            "PEER_SILENT",
            `nothing received from the peer for ${opts.idleTimeoutMs} ms (path blackholed or peer hung)`,
            { details: { idleTimeoutMs: opts.idleTimeoutMs } },
          ),
        );
        return;
      }
      if (now - this.lastSent >= opts.intervalMs) this.send({ type: "HEARTBEAT", timestampMs: BigInt(now) });
    }, tick);
    this.timer.unref();
  }

  /** Sends an ERROR frame, then closes. */
  sendErrorAndClose(code: string, message: string): void {
    if (this.closed) return;
    this.send({ type: "ERROR", code, message: message.slice(0, 60000) });
    this.stream.end();
    // A peer that does not read must not keep us waiting.
    setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  close(): void {
    this.stream.destroy();
    this.finish(undefined);
  }

  private fail(err: Error): void {
    this.stream.destroy();
    this.finish(err);
  }

  private finish(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.handlers?.close(err);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
