/**
 * The initial sync of one disk: read → skip zero blocks → hash → compress
 * (adaptive) → send, with read-ahead, a bounded window of unacknowledged
 * bytes, bandwidth throttling and resume from the replicator's durable point
 * after a lost connection or a restart.
 */
import { randomBytes } from "node:crypto";
import { constants as zc, zstdCompressSync } from "node:zlib";
import { FerryError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import {
  BarrierFlags,
  Compression,
  HelloMode,
  PROTOCOL_VERSION,
  blockHashes,
  isZero,
  type Frame,
} from "../wire/index.ts";
import { connectReplicator, handshake, replicatorError, type ReplicatorEndpoint } from "./client.ts";
import { type BlockSource, type DirectMode, openBlockSource } from "./disk/block-source.ts";
import { loadDiskState, saveDiskState } from "./state.ts";
import { Throttle } from "./throttle.ts";

const MiB = 1024 * 1024;

export interface ReplicateOptions {
  sourcePath: string;
  sourceServerId: string;
  diskId: string;
  endpoint: ReplicatorEndpoint;
  /** Where the agent keeps its per-disk state (generation ids). */
  stateDir: string;
  /** Start a new generation even if a resumable one exists. @default false */
  resync?: boolean;
  /** @default 1 MiB */
  chunkSize?: number;
  /** @default 64 KiB */
  hashBlockSize?: number;
  /** Unacknowledged raw bytes allowed in flight. @default 64 MiB */
  windowBytes?: number;
  /** @default "auto" */
  compression?: "auto" | "zstd" | "none";
  /** Mbps, 0 = unlimited. */
  bandwidthMbps?: number;
  direct?: DirectMode;
  /** Reconnect attempts after a lost connection. @default 8 */
  maxReconnects?: number;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  log?: Logger;
  /** Lets the caller change the bandwidth live. */
  throttle?: Throttle;
}

export interface SyncProgress {
  diskId: string;
  size: number;
  /** Bytes read and handed to the sender. */
  readOffset: number;
  /** Bytes durable on the replicator. */
  ackedOffset: number;
  bytesSent: number;
  zeroBytes: number;
  startedAt: number;
  resumedFrom: number;
}

export interface SyncStalls {
  readWaitMs: number;
  windowWaitMs: number;
  socketWaitMs: number;
  throttleWaitMs: number;
  compressMs: number;
  hashMs: number;
}

export interface SyncResult {
  diskId: string;
  sourcePath: string;
  generationId: string;
  bytes: number;
  zeroBytes: number;
  /** Raw bytes sent as DATA. */
  dataBytes: number;
  /** Raw bytes that went through zstd and the bytes they became. */
  compressedRawBytes: number;
  compressedBytes: number;
  /** Bytes on the wire (frames, before TLS). */
  wireBytes: number;
  /** Offset the first connection resumed from (0 for a new sync). */
  resumedFrom: number;
  /** Where the time went (ms): waiting for the disk, for acknowledgements, for the socket; compressing; hashing. */
  stalls: SyncStalls;
  reconnects: number;
  seconds: number;
  direct: boolean;
}

/** Errors that no retry can fix. */
const FATAL = new Set([
  "AUTH_FAILED",
  "REPLICATOR_FINGERPRINT_MISMATCH",
  "GENERATION_MISMATCH",
  "GENERATION_UNKNOWN",
  "DISK_GEOMETRY_CHANGED",
  "UNSUPPORTED_PROTOCOL_VERSION",
  "BAD_HELLO",
  "INVALID_NAME",
  "STAGING_DISK_FULL",
  "STAGING_IO_ERROR",
  "DISK_SHRANK",
  "DISK_READ_FAILED",
  "DISK_NOT_FOUND",
  "ABORTED",
]);

export async function replicateDisk(options: ReplicateOptions): Promise<SyncResult> {
  const log = options.log ?? silentLogger;
  const source = await openBlockSource(options.sourcePath, options.direct ? { direct: options.direct } : {});
  const throttle = options.throttle ?? new Throttle(options.bandwidthMbps ?? 0);
  const started = performance.now();
  const totals = { zeroBytes: 0, dataBytes: 0, compressedRawBytes: 0, compressedBytes: 0, wireBytes: 0 };
  const stalls: SyncStalls = {
    readWaitMs: 0,
    windowWaitMs: 0,
    socketWaitMs: 0,
    throttleWaitMs: 0,
    compressMs: 0,
    hashMs: 0,
  };
  let resumedFrom: number | undefined;
  let reconnects = 0;
  let generationId: string | undefined;
  try {
    for (let attempt = 0; generationId === undefined; attempt++) {
      if (options.signal?.aborted) throw aborted();
      try {
        generationId = await syncOnce(options, source, throttle, totals, stalls, log, (from) => {
          resumedFrom ??= from;
        });
      } catch (err) {
        const fe = err instanceof FerryError ? err : new FerryError("DISK_READ_FAILED", String(err));
        if (FATAL.has(fe.code) || attempt >= (options.maxReconnects ?? 8) || options.signal?.aborted)
          throw err;
        reconnects++;
        const delay = Math.min(30000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        log.warn("connection lost; reconnecting", {
          code: fe.code,
          error: fe.message,
          attempt: attempt + 1,
          delayMs: Math.round(delay),
        });
        await sleep(delay, options.signal);
      }
    }
  } finally {
    await source.close();
  }
  return {
    diskId: options.diskId,
    sourcePath: options.sourcePath,
    generationId,
    bytes: source.size,
    ...totals,
    resumedFrom: resumedFrom ?? 0,
    stalls: Object.fromEntries(
      Object.entries(stalls).map(([k, v]) => [k, Math.round(v)]),
    ) as unknown as SyncStalls,
    reconnects,
    seconds: (performance.now() - started) / 1000,
    direct: source.direct,
  };
}

function aborted(): FerryError {
  return new FerryError(
    "ABORTED",
    "replication stopped by a signal; progress up to the last acknowledgement is kept",
  );
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** One connection's worth of syncing; returns the generation id when the disk is complete. */
async function syncOnce(
  o: ReplicateOptions,
  source: BlockSource,
  throttle: Throttle,
  totals: {
    zeroBytes: number;
    dataBytes: number;
    compressedRawBytes: number;
    compressedBytes: number;
    wireBytes: number;
  },
  stalls: SyncStalls,
  log: Logger,
  onResume: (from: number) => void,
): Promise<string> {
  const chunkSize = o.chunkSize ?? MiB;
  const hashBlockSize = o.hashBlockSize ?? 64 * 1024;
  const windowBytes = o.windowBytes ?? 64 * MiB;
  if (chunkSize % hashBlockSize !== 0)
    throw new RangeError("chunk size must be a multiple of the hash block size");
  const size = source.size;
  if (size === 0) throw new FerryError("DISK_EMPTY", `${o.sourcePath} has a size of 0 bytes`);

  const prior = await loadDiskState(o.stateDir, o.sourceServerId, o.diskId);
  const resume =
    !o.resync &&
    prior !== undefined &&
    !prior.initialSyncComplete &&
    prior.diskSize === size &&
    prior.hashBlockSize === hashBlockSize;
  const generation = resume ? Buffer.from(prior.generationId, "hex") : randomBytes(16);

  const conn = await connectReplicator(o.endpoint);
  let closeReason: Error | undefined;
  try {
    const welcome = await handshake(conn, {
      type: "HELLO",
      protocolVersion: PROTOCOL_VERSION,
      mode: resume ? HelloMode.RESUME : HelloMode.NEW,
      sourceServerId: o.sourceServerId,
      diskId: o.diskId,
      diskSize: BigInt(size),
      logicalBlockSize: source.logicalBlockSize,
      hashBlockSize,
      generationId: generation,
      token: o.endpoint.token,
    });
    const generationId = generation.toString("hex");
    if (!resume) {
      await saveDiskState(o.stateDir, {
        sourceServerId: o.sourceServerId,
        diskId: o.diskId,
        sourcePath: o.sourcePath,
        generationId,
        diskSize: size,
        hashBlockSize,
        initialSyncComplete: false,
        updatedAt: "",
      });
    }
    const startOffset = Number(welcome.resumeOffset);
    onResume(startOffset);
    log.info(resume ? "resuming sync" : "starting sync", { diskId: o.diskId, offset: startOffset, size });

    // --- acknowledgements and the window ---------------------------------
    let nextSeq = Number(welcome.durableSeq) + 1;
    let ackedSeq = Number(welcome.durableSeq);
    let ackedOffset = startOffset;
    const inFlight: { seq: number; end: number; bytes: number }[] = [];
    let inFlightBytes = 0;
    let wake: (() => void) | undefined;
    const wakeUp = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    conn.start({
      frame: (f: Frame) => {
        if (f.type === "ACK") {
          ackedSeq = Number(f.seq);
          while (inFlight.length && inFlight[0]!.seq <= ackedSeq) {
            const done = inFlight.shift()!;
            inFlightBytes -= done.bytes;
            ackedOffset = done.end;
          }
          wakeUp();
        } else if (f.type === "ERROR") {
          closeReason = replicatorError(f.code, f.message);
          conn.close();
        }
      },
      close: (err) => {
        closeReason ??=
          err instanceof FerryError
            ? err
            : new FerryError(
                "CONNECTION_LOST",
                `lost the connection to the replicator${err ? `: ${err.message}` : ""}`,
              );
        wakeUp();
      },
    });
    const hb = welcome.heartbeatIntervalMs || 5000;
    conn.heartbeat({ intervalMs: hb, idleTimeoutMs: hb * 4 });
    const onAbort = () => {
      closeReason = aborted();
      conn.close();
    };
    o.signal?.addEventListener("abort", onAbort);

    const check = () => {
      if (closeReason) throw closeReason;
    };
    const waitFor = async (cond: () => boolean) => {
      while (!cond()) {
        check();
        await new Promise<void>((r) => (wake = r));
      }
      check();
    };

    const progress: SyncProgress = {
      diskId: o.diskId,
      size,
      readOffset: startOffset,
      ackedOffset,
      bytesSent: 0,
      zeroBytes: 0,
      startedAt: Date.now(),
      resumedFrom: startOffset,
    };
    let lastReport = 0;
    const report = (force = false) => {
      const now = performance.now();
      if (!o.onProgress || (!force && now - lastReport < 200)) return;
      lastReport = now;
      o.onProgress({ ...progress, ackedOffset, bytesSent: totals.wireBytes, zeroBytes: totals.zeroBytes });
    };

    // --- the sender: frames in order, window, throttle, back-pressure ------
    const send = async (frame: Frame, end: number, rawBytes: number) => {
      let t = performance.now();
      await waitFor(() => inFlightBytes + rawBytes <= windowBytes || inFlight.length === 0);
      stalls.windowWaitMs += performance.now() - t;
      const before = conn.bytesSent;
      t = performance.now();
      await throttle.take(frame.type === "DATA" ? frame.payload.length + 64 : 64, o.signal);
      stalls.throttleWaitMs += performance.now() - t;
      check();
      if (frame.type !== "HEARTBEAT" && frame.type !== "ACK" && frame.type !== "ERROR" && "seq" in frame) {
        inFlight.push({ seq: Number(frame.seq), end, bytes: rawBytes });
        inFlightBytes += rawBytes;
      }
      const ok = conn.send(frame);
      totals.wireBytes += conn.bytesSent - before;
      if (!ok) {
        t = performance.now();
        await conn.drain();
        stalls.socketWaitMs += performance.now() - t;
      }
      check();
      report();
    };

    // --- compression policy ---------------------------------------------
    // zstd level 1 on the event loop: for 1 MiB blocks the synchronous call
    // costs less than a round trip through the thread pool. Skipped for a while
    // after blocks that do not shrink, and while we are CPU-bound rather than
    // network-bound.
    let incompressibleStreak = 0;
    let skipCompression = 0;
    let compressMs = 0;
    let windowStart = performance.now();
    let netWaitAtWindowStart = stalls.socketWaitMs + stalls.windowWaitMs + stalls.throttleWaitMs;
    const makeData = (seq: number, offset: number, raw: Buffer, hashes: Buffer): Frame => {
      let payload = raw;
      let compression: (typeof Compression)[keyof typeof Compression] = Compression.NONE;
      const policy = o.compression ?? "auto";
      const now = performance.now();
      if (now - windowStart > 1000) {
        // Once a second: were we waiting on the network (compression pays) or on
        // our own CPU (compressing costs more than sending raw)? CPU-bound: skip
        // compression for the next 64 blocks, then probe again.
        const elapsed = now - windowStart;
        const netWait =
          stalls.socketWaitMs + stalls.windowWaitMs + stalls.throttleWaitMs - netWaitAtWindowStart;
        if (policy === "auto" && netWait / elapsed < 0.05 && compressMs / elapsed > 0.2) {
          skipCompression = Math.max(skipCompression, 64);
        }
        compressMs = 0;
        netWaitAtWindowStart += netWait;
        windowStart = now;
      }
      const tryIt = policy === "zstd" || (policy === "auto" && skipCompression === 0);
      if (skipCompression > 0) skipCompression--;
      if (tryIt) {
        const t0 = performance.now();
        const z = zstdCompressSync(raw, {
          chunkSize: raw.length + 1024,
          params: { [zc.ZSTD_c_compressionLevel]: 1 },
        });
        compressMs += performance.now() - t0;
        stalls.compressMs += performance.now() - t0;
        if (z.length < raw.length * 0.9) {
          payload = z;
          compression = Compression.ZSTD;
          incompressibleStreak = 0;
          totals.compressedRawBytes += raw.length;
          totals.compressedBytes += z.length;
        } else if (++incompressibleStreak >= 4 && policy === "auto") {
          skipCompression = 16;
          incompressibleStreak = 0;
        }
      }
      if (payload === raw) payload = Buffer.from(raw); // the read buffer is reused
      return {
        type: "DATA",
        seq: BigInt(seq),
        offset: BigInt(offset),
        length: raw.length,
        compression,
        hashes,
        payload,
      };
    };

    // --- the reader and producer -----------------------------------------
    const readAhead = 4;
    const buffers = source.allocBuffers(readAhead + 1, chunkSize);
    const freeBuffers = [...buffers];
    const reads: Promise<{ offset: number; buf: Buffer; n: number }>[] = [];
    let nextRead = startOffset;
    const startRead = () => {
      if (nextRead >= size || freeBuffers.length === 0) return;
      const offset = nextRead;
      const buf = freeBuffers.pop()!;
      const want = Math.min(chunkSize, size - offset);
      nextRead += want;
      const p = source.read(buf, offset, want).then((n) => ({ offset, buf, n }));
      p.catch(() => {});
      reads.push(p);
    };
    const pending: { frame: Promise<Frame>; end: number; bytes: number }[] = [];
    const flushPending = async (keep: number) => {
      while (pending.length > keep) {
        const p = pending.shift()!;
        await send(await p.frame, p.end, p.bytes);
      }
    };
    let zeroStart = -1;
    let zeroLen = 0;
    const emitZero = () => {
      if (zeroLen === 0) return;
      const seq = nextSeq++;
      pending.push({
        frame: Promise.resolve({
          type: "ZERO",
          seq: BigInt(seq),
          offset: BigInt(zeroStart),
          length: BigInt(zeroLen),
        }),
        end: zeroStart + zeroLen,
        bytes: 0,
      });
      zeroStart = -1;
      zeroLen = 0;
    };

    try {
      while (reads.length < readAhead) {
        const before = reads.length;
        startRead();
        if (reads.length === before) break;
      }
      while (reads.length > 0) {
        check();
        const tr = performance.now();
        const { offset, buf, n } = await reads.shift()!;
        stalls.readWaitMs += performance.now() - tr;
        const expected = Math.min(chunkSize, size - offset);
        if (n < expected) {
          const now = await source.currentSize();
          throw new FerryError(
            "DISK_SHRANK",
            `${o.sourcePath} shrank from ${size} to ${now} bytes during the sync (short read at offset ${offset}); what was acknowledged is kept — restart the agent to sync the disk at its new size`,
            { details: { path: o.sourcePath, size, now, offset } },
          );
        }
        // Split the chunk into runs of zero and non-zero hash blocks.
        let runStart = -1;
        for (let at = 0; at <= n; at += hashBlockSize) {
          const block = at < n ? buf.subarray(at, Math.min(at + hashBlockSize, n)) : undefined;
          const zero = block !== undefined && isZero(block);
          if (block === undefined || zero) {
            if (runStart >= 0) {
              emitZero();
              const raw = buf.subarray(runStart, at);
              const seq = nextSeq++;
              const dataOffset = offset + runStart;
              const th = performance.now();
              const hashes = blockHashes(raw, hashBlockSize);
              stalls.hashMs += performance.now() - th;
              pending.push({
                frame: Promise.resolve(makeData(seq, dataOffset, raw, hashes)),
                end: dataOffset + raw.length,
                bytes: raw.length,
              });
              totals.dataBytes += raw.length;
              runStart = -1;
            }
            if (zero) {
              if (zeroLen === 0) zeroStart = offset + at;
              zeroLen += block.length;
              totals.zeroBytes += block.length;
              if (zeroLen >= 256 * MiB) emitZero();
            }
          } else if (runStart < 0) {
            runStart = at;
          }
        }
        freeBuffers.push(buf);
        progress.readOffset = offset + n;
        startRead();
        await flushPending(4);
      }
      emitZero();
      await flushPending(0);
      // The whole disk is sent: a barrier marks the initial sync complete and consistent.
      const barrierSeq = nextSeq++;
      await send(
        {
          type: "BARRIER",
          seq: BigInt(barrierSeq),
          barrierId: 1n,
          flags: BarrierFlags.INITIAL_SYNC_COMPLETE | BarrierFlags.CONSISTENT,
          timestampMs: BigInt(Date.now()),
        },
        size,
        0,
      );
      await waitFor(() => ackedSeq >= barrierSeq);
      report(true);
      await saveDiskState(o.stateDir, {
        sourceServerId: o.sourceServerId,
        diskId: o.diskId,
        sourcePath: o.sourcePath,
        generationId,
        diskSize: size,
        hashBlockSize,
        initialSyncComplete: true,
        updatedAt: "",
      });
      return generationId;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      // Let outstanding reads finish before their buffers can be reused or freed.
      await Promise.allSettled(reads);
    }
  } finally {
    conn.close();
  }
}
