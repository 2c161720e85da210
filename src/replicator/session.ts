/**
 * One agent connection on the replicator: handshake, then a stream of DATA /
 * ZERO / BARRIER frames applied in sequence order to the disk's staging
 * volume. Payloads are decompressed and verified concurrently as they arrive;
 * writes happen strictly in order; flushes run beside the writes and each
 * ends with an ACK of the highest sequence number it made durable.
 */
import { FerryError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import {
  BarrierFlags,
  Compression,
  HASH_BYTES,
  HelloMode,
  PROTOCOL_VERSION,
  type DataFrame,
  type Frame,
  type FramedConnection,
  type HelloFrame,
} from "../wire/index.ts";
import { preparePayload } from "./payload-checker.ts";
import type { PeerInfo, SessionHost } from "./session-host.ts";
import { StagingVolume, checkName } from "./volume.ts";

export type {
  Authorize,
  PeerInfo,
  SessionEvent,
  SessionHost,
  SessionLimits,
  SnapshotHook,
} from "./session-host.ts";

export class Session {
  private readonly conn: FramedConnection;
  private readonly host: SessionHost;
  private log: Logger;
  private volume: StagingVolume | undefined;
  private key: string | undefined;
  private state: "hello" | "handshaking" | "streaming" | "failed" | "closed" = "hello";
  private expectedSeq = 1;
  private chain: Promise<void> = Promise.resolve();
  /** Settles after the last queued write to the volume (writes settle in order). */
  private writes: Promise<void> = Promise.resolve();
  private pendingBytes = 0;
  private pendingFrames = 0;
  private lastWrittenSeq = 0;
  private cursor = 0;
  private bytesSinceFlush = 0;
  /** performance.now() at the last flush's start. */
  private lastFlushAt = performance.now();
  private flushing: Promise<void> | undefined;
  private flushWanted = false;
  private helloTimer: NodeJS.Timeout | undefined;
  private ids = { sourceServerId: "", diskId: "" };
  /** Raw bytes of DATA frames received on this connection. */
  private dataBytesReceived = 0;
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  private readonly peer: PeerInfo;

  constructor(conn: FramedConnection, host: SessionHost, peer: PeerInfo = {}) {
    this.conn = conn;
    this.host = host;
    this.peer = peer;
    this.log = host.log;
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  start(): void {
    this.helloTimer = setTimeout(
      () => this.refuse("HELLO_TIMEOUT", `no HELLO within ${this.host.limits.helloTimeoutMs} ms`),
      this.host.limits.helloTimeoutMs,
    );
    this.helloTimer.unref();
    this.conn.start({
      frame: (f) => this.onFrame(f),
      close: (err) => void this.onClose(err),
    });
  }

  /** Ends this session (another connection took over its disk); resolves when its writes settled. */
  /** The source server of this session ("" before its HELLO). */
  get sourceServerId(): string {
    return this.ids.sourceServerId;
  }

  /** Ends the session with an error the agent reads (e.g. its server may no longer replicate). */
  end(error: FerryError): void {
    this.refuse(error.code, error.message);
  }

  async terminate(): Promise<void> {
    if (this.state !== "closed") this.conn.close();
    await this.ended;
  }

  private onFrame(frame: Frame): void {
    if (this.state === "failed" || this.state === "closed") return;
    if (frame.type === "HEARTBEAT") return;
    if (frame.type === "ERROR") {
      this.log.warn("agent reported an error", { code: frame.code, message: frame.message });
      this.conn.close();
      return;
    }
    if (this.state === "hello") {
      if (frame.type !== "HELLO") {
        this.refuse("PROTOCOL_ERROR", `expected HELLO first, got ${frame.type}`);
        return;
      }
      clearTimeout(this.helloTimer);
      this.state = "handshaking";
      this.handshake(frame).catch((err: unknown) => this.abort(err));
      return;
    }
    if (this.state !== "streaming") {
      this.refuse("PROTOCOL_ERROR", `unexpected ${frame.type} during the handshake`);
      return;
    }
    if (frame.type === "HASH_REQUEST") {
      const m = this.volume!.meta;
      const blocks = Math.ceil(m.diskSize / m.hashBlockSize);
      const first = Number(frame.firstBlock);
      if (first + frame.count > blocks) {
        this.refuse(
          "BAD_RANGE",
          `hash request for blocks ${first}+${frame.count} beyond the disk's ${blocks}`,
        );
        return;
      }
      const requestId = frame.requestId;
      const count = frame.count;
      // Answered in order with the frames before it, so it reflects them.
      this.enqueue(0, async (vol) => {
        const hashes = await vol.readHashes(first, count);
        this.conn.send({ type: "HASHES", requestId, firstBlock: BigInt(first), hashes });
      });
      return;
    }
    if (frame.type !== "DATA" && frame.type !== "ZERO" && frame.type !== "BARRIER") {
      this.refuse("PROTOCOL_ERROR", `unexpected ${frame.type} from the agent`);
      return;
    }
    if (frame.seq !== BigInt(this.expectedSeq)) {
      this.refuse("SEQUENCE_ERROR", `frame seq ${frame.seq} out of order (expected ${this.expectedSeq})`);
      return;
    }
    this.expectedSeq++;
    switch (frame.type) {
      case "DATA":
        this.onData(frame);
        break;
      case "ZERO": {
        const offset = Number(frame.offset);
        const length = Number(frame.length);
        if (!this.inDisk(offset, length)) return;
        const seq = Number(frame.seq);
        this.enqueue(0, async (vol) => {
          await vol.writeZero(offset, length);
          this.written(seq, offset + length, 0);
        });
        break;
      }
      case "BARRIER": {
        const seq = Number(frame.seq);
        const barrierId = Number(frame.barrierId);
        const flags = frame.flags;
        this.enqueue(0, async () => {
          this.written(seq, this.cursor, 0);
          const update: Record<string, unknown> = { lastBarrierId: barrierId };
          if (flags & BarrierFlags.INITIAL_SYNC_COMPLETE) update.initialSyncComplete = true;
          if (flags & BarrierFlags.CONSISTENT) update.lastConsistentAt = new Date().toISOString();
          // Not after a failed flush (no snapshot of undurable writes). The agent may close the
          // connection as soon as it has the barrier's ACK: the point is durable, so take it anyway.
          if (!(await this.flushNow(update))) return;
          if (flags & BarrierFlags.CONSISTENT && this.host.snapshots) {
            await this.host.snapshots.atConsistencyPoint(this.volume!, {
              barrierId,
              initialSyncComplete: (flags & BarrierFlags.INITIAL_SYNC_COMPLETE) !== 0,
            });
          }
          this.host.onEvent?.({ type: "barrier", ...this.ids, barrierId, flags });
        });
        break;
      }
    }
  }

  private async handshake(hello: HelloFrame): Promise<void> {
    const { limits } = this.host;
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      throw new FerryError(
        "UNSUPPORTED_PROTOCOL_VERSION",
        `agent speaks protocol version ${hello.protocolVersion}, this replicator speaks ${PROTOCOL_VERSION}: upgrade the older side`,
      );
    }
    checkName("sourceServerId", hello.sourceServerId);
    checkName("diskId", hello.diskId);
    const hbs = hello.hashBlockSize;
    if (hbs < 4096 || hbs > limits.maxDataLength || (hbs & (hbs - 1)) !== 0) {
      throw new FerryError(
        "BAD_HELLO",
        `hash block size ${hbs} must be a power of two from 4096 to ${limits.maxDataLength}`,
      );
    }
    const lbs = hello.logicalBlockSize;
    if (lbs < 512 || lbs > 65536 || (lbs & (lbs - 1)) !== 0) {
      throw new FerryError("BAD_HELLO", `logical block size ${lbs} must be a power of two from 512 to 65536`);
    }
    if (hello.diskSize === 0n || hello.diskSize > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FerryError("BAD_HELLO", `disk size ${hello.diskSize} is out of range`);
    }
    await this.host.authorize(hello, this.peer);
    this.ids = { sourceServerId: hello.sourceServerId, diskId: hello.diskId };
    this.log = this.host.log.child(this.ids);
    const key = `${hello.sourceServerId}/${hello.diskId}`;
    await this.host.claim(key, this);
    this.key = key;
    if (this.state !== "handshaking") return; // closed while waiting
    const volume = await StagingVolume.open(this.host.store, hello.sourceServerId, hello.diskId);
    this.volume = volume;
    const generationId = hello.generationId.toString("hex");
    const diskSize = Number(hello.diskSize);
    if (hello.mode === HelloMode.NEW) {
      await volume.startGeneration({ generationId, diskSize, logicalBlockSize: lbs, hashBlockSize: hbs });
    } else {
      const m = volume.meta;
      if (m.generationId === "") {
        throw new FerryError(
          "GENERATION_UNKNOWN",
          `this replicator has no staging volume for ${key}; the agent must start a new sync (its state belongs to another replicator or was removed)`,
        );
      }
      if (m.generationId !== generationId) {
        throw new FerryError(
          "GENERATION_MISMATCH",
          `the staging volume of ${key} belongs to generation ${m.generationId}, the agent resumes ${generationId}: start a new sync of this disk (ferry agent replicate --resync)`,
        );
      }
      if (m.diskSize !== diskSize || m.hashBlockSize !== hbs) {
        throw new FerryError(
          "DISK_GEOMETRY_CHANGED",
          `disk ${key} was ${m.diskSize} bytes (hash block ${m.hashBlockSize}) and is now ${diskSize} (hash block ${hbs}): start a new sync`,
        );
      }
    }
    this.expectedSeq = volume.meta.durableSeq + 1;
    this.lastWrittenSeq = volume.meta.durableSeq;
    this.cursor = volume.meta.resumeOffset;
    this.state = "streaming";
    this.conn.send({
      type: "WELCOME",
      protocolVersion: PROTOCOL_VERSION,
      generationId: hello.generationId,
      resumeOffset: BigInt(volume.meta.resumeOffset),
      durableSeq: BigInt(volume.meta.durableSeq),
      maxDataLength: limits.maxDataLength,
      heartbeatIntervalMs: limits.heartbeatIntervalMs,
    });
    this.conn.heartbeat({ intervalMs: limits.heartbeatIntervalMs, idleTimeoutMs: limits.idleTimeoutMs });
    this.log.info("session started", {
      mode: hello.mode === HelloMode.NEW ? "NEW" : "RESUME",
      resumeOffset: volume.meta.resumeOffset,
      durableSeq: volume.meta.durableSeq,
      diskSize,
    });
    this.host.onEvent?.({
      type: "hello",
      ...this.ids,
      mode: hello.mode === HelloMode.NEW ? "NEW" : "RESUME",
      resumeOffset: volume.meta.resumeOffset,
    });
  }

  private inDisk(offset: number, length: number): boolean {
    const m = this.volume!.meta;
    if (offset % m.hashBlockSize !== 0 || length <= 0 || offset + length > m.diskSize) {
      this.refuse(
        "BAD_RANGE",
        `range ${offset}+${length} is not aligned to ${m.hashBlockSize} or beyond the ${m.diskSize}-byte disk`,
      );
      return false;
    }
    return true;
  }

  private onData(frame: DataFrame): void {
    const m = this.volume!.meta;
    const offset = Number(frame.offset);
    const length = frame.length;
    if (length > this.host.limits.maxDataLength) {
      this.refuse(
        "FRAME_TOO_LARGE",
        `DATA of ${length} bytes exceeds the ${this.host.limits.maxDataLength}-byte limit`,
      );
      return;
    }
    if (!this.inDisk(offset, length)) return;
    if (frame.hashes.length !== Math.ceil(length / m.hashBlockSize) * HASH_BYTES) {
      this.refuse(
        "BAD_HASHES",
        `DATA at ${offset} carries ${frame.hashes.length / HASH_BYTES} hashes for ${length} bytes`,
      );
      return;
    }
    this.dataBytesReceived += length;
    const prepared = preparePayload(frame, m.hashBlockSize, this.host.payloads);
    prepared.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
    const seq = Number(frame.seq);
    // A volume on a store without appendable objects keeps the data it is given until it seals
    // the segment: raw payloads from the pool are not given back then (the GC frees them).
    const reusable = frame.compression !== Compression.NONE || this.host.store.openAppendable !== undefined;
    const end = offset + length;
    this.enqueue(length, async (vol) => {
      const data = await prepared;
      const { written } = await vol.appendData(offset, data, frame.hashes);
      // Not awaited here: the next frames' records join the same write to the store.
      return {
        written,
        done: () => {
          // The volume copied the hashes and wrote the data: the frame's memory can take another frame.
          if (reusable) this.host.frames?.release(frame.payload);
          this.written(seq, end, length);
        },
      };
    });
  }

  /**
   * Applies frames strictly in order. `apply` may return the promise of its
   * write: the next frame is applied at once, and the frame's bytes count as
   * pending (the socket pauses) until that write settled; then `done` runs.
   */
  private enqueue(
    bytes: number,
    apply: (vol: StagingVolume) => Promise<{ written: Promise<void>; done: () => void } | void>,
  ): void {
    if (bytes > 0 && this.pendingBytes === 0) this.host.holdsPending?.(this, true);
    this.pendingBytes += bytes;
    this.pendingFrames++;
    if (bytes > 0 && this.pendingBytes > this.pendingLimit()) this.conn.stream.pause();
    const settle = () => {
      this.pendingBytes -= bytes;
      this.pendingFrames--;
      if (bytes > 0 && this.pendingBytes === 0) this.host.holdsPending?.(this, false);
      if (this.conn.stream.isPaused() && this.pendingBytes <= this.pendingLimit() / 2)
        this.conn.stream.resume();
    };
    this.chain = this.chain.then(async () => {
      if (this.state !== "streaming") return settle();
      let writing: { written: Promise<void>; done: () => void } | void;
      try {
        writing = await apply(this.volume!);
      } catch (err) {
        this.abort(err);
        return settle();
      }
      if (!writing) return settle();
      // The store writes in the order of queueing: the last write settles after the others.
      // No longer pending before `done`: the last of a batch of writes sees none left, and flushes.
      const { done } = writing;
      this.writes = writing.written.then(
        () => {
          settle();
          done();
        },
        (err: unknown) => {
          settle();
          this.abort(err);
        },
      );
    });
  }

  private pendingLimit(): number {
    return this.host.pendingLimit?.() ?? this.host.limits.maxPendingBytes;
  }

  private written(seq: number, end: number, bytes: number): void {
    // A barrier or a zero range may be applied before the data queued ahead of it is written:
    // never go back. A flush makes everything queued before it durable, so this is safe.
    this.lastWrittenSeq = Math.max(this.lastWrittenSeq, seq);
    this.cursor = Math.max(this.cursor, end);
    this.bytesSinceFlush += bytes;
    if (
      this.pendingFrames <= 1 ||
      this.bytesSinceFlush >= this.host.limits.flushBytes ||
      performance.now() - this.lastFlushAt >= this.host.limits.flushMs ||
      this.volume!.wantsFlush()
    ) {
      this.requestFlush();
    }
  }

  private requestFlush(): void {
    if (this.flushing) {
      this.flushWanted = true;
      return;
    }
    const seq = this.lastWrittenSeq;
    const cursor = this.cursor;
    this.bytesSinceFlush = 0;
    this.lastFlushAt = performance.now();
    this.flushing = this.doFlush(seq, cursor, {})
      .then(() => {})
      .finally(() => {
        this.flushing = undefined;
        if (this.flushWanted && this.state === "streaming") {
          this.flushWanted = false;
          if (this.lastWrittenSeq > this.volume!.meta.durableSeq) this.requestFlush();
        }
      });
  }

  /** A flush that must finish before the next frame is applied (barriers); true when it made everything durable. */
  private async flushNow(update: Record<string, unknown>): Promise<boolean> {
    while (this.flushing) await this.flushing;
    this.bytesSinceFlush = 0;
    this.lastFlushAt = performance.now();
    return this.doFlush(this.lastWrittenSeq, this.cursor, update);
  }

  /** True when the writes up to `seq` are durable and recorded (false: the session ended or the flush failed). */
  private async doFlush(seq: number, cursor: number, update: Record<string, unknown>): Promise<boolean> {
    const vol = this.volume;
    if (!vol || this.state !== "streaming") return false;
    if (seq <= vol.meta.durableSeq && Object.keys(update).length === 0) return true;
    const from = performance.now();
    try {
      await vol.flush({ ...update, durableSeq: seq, resumeOffset: cursor });
    } catch (err) {
      this.abort(err);
      return false;
    }
    // How long durability takes (FERRY_LOG_LEVEL=debug): the replicator's share of the lag.
    this.log.debug("flush", { seq, ms: Math.round((performance.now() - from) * 10) / 10 });
    this.conn.send({ type: "ACK", seq: BigInt(seq) });
    this.host.onEvent?.({ type: "durable", ...this.ids, seq, resumeOffset: cursor });
    return true;
  }

  private refuse(code: string, message: string): void {
    if (this.state === "failed" || this.state === "closed") return;
    this.state = "failed";
    this.log.warn("refused", { code, message });
    this.conn.sendErrorAndClose(code, message);
  }

  private abort(err: unknown): void {
    if (err instanceof FerryError) {
      this.refuse(err.code, err.message);
    } else {
      this.log.error("internal error", { error: String((err as Error)?.stack ?? err) });
      this.refuse("INTERNAL", `replicator internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  private async onClose(err: Error | undefined): Promise<void> {
    clearTimeout(this.helloTimer);
    const wasStreaming = this.state === "streaming";
    if (this.state !== "failed") this.state = "failed";
    // Let queued writes settle (they are skipped once failed), then close the volume.
    await this.chain.catch(() => {});
    await this.writes.catch(() => {});
    if (this.flushing) await this.flushing.catch(() => {});
    await this.volume?.close();
    this.host.holdsPending?.(this, false);
    this.state = "closed";
    if (this.key) this.host.release(this.key, this);
    if (wasStreaming || err) {
      this.log.info("session ended", { error: err?.message });
      if (this.ids.diskId) {
        this.host.onEvent?.({
          type: "closed",
          ...this.ids,
          dataBytesReceived: this.dataBytesReceived,
          ...(err ? { error: err.message } : {}),
        });
      }
    }
    this.resolveEnded();
  }
}
