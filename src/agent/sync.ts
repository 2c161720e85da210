/**
 * Replicating one disk: connect (with retries), then, depending on what the
 * agent and the replicator remember of it,
 * - a new initial sync (a new generation),
 * - the rest of an interrupted initial sync (resume from the durable point), or
 * - a rescan: read every block, compare with the hashes the replicator
 *   recorded, send only what differs (after a completed sync whose changes
 *   were not tracked).
 */
import { randomBytes } from "node:crypto";
import { FerryError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import { BarrierFlags, HASH_BYTES, HelloMode, PROTOCOL_VERSION, recordedHash } from "../wire/index.ts";
import { connectReplicator, handshake, type ReplicatorEndpoint } from "./client.ts";
import { type BlockSource, type DirectMode, openBlockSource } from "./disk/block-source.ts";
import { type DiskState, loadDiskState, saveDiskState } from "./state.ts";
import { type ContinuousOptions, runContinuous } from "./continuous.ts";
import { DataStream, emptyCounters, emptyStalls, type StreamCounters, type SyncStalls } from "./stream.ts";
import { Throttle } from "./throttle.ts";
import { type BlockProcessor, createBlockProcessor, resolveWorkerCount } from "./workers/block-pool.ts";

export type { SyncStalls } from "./stream.ts";

const MiB = 1024 * 1024;
/** Bytes read (and hashes asked for) at a time by a rescan. */
const RESCAN_SPAN = 16 * MiB;

export interface ReplicateOptions {
  sourcePath: string;
  sourceServerId: string;
  diskId: string;
  endpoint: ReplicatorEndpoint;
  /** Where the agent keeps its per-disk state (generation ids). */
  stateDir: string;
  /** Start a new generation (full copy) even if a resumable one exists. @default false */
  resync?: boolean;
  /** @default 1 MiB */
  chunkSize?: number;
  /** @default 64 KiB */
  hashBlockSize?: number;
  /** Unacknowledged raw bytes allowed in flight. @default 64 MiB */
  windowBytes?: number;
  /**
   * "auto" measures whether compressing makes the sync faster (it does on a
   * slow link, not on a fast one) and keeps re-checking; blocks that do not
   * shrink are sent raw in every mode. @default "auto"
   */
  compression?: "auto" | "zstd" | "none";
  /**
   * Worker threads that hash and compress (0: on the event loop). Each busy
   * worker can use a core of its own, beside the event loop's (reads, TLS).
   * @default "auto": the cores but one, 1 to 4
   */
  workers?: number | "auto";
  /** Mbps, 0 = unlimited. */
  bandwidthMbps?: number;
  direct?: DirectMode;
  /**
   * Reconnect attempts in a row without progress; a connection that got
   * anything acknowledged starts the count (and the backoff) again. @default 8
   */
  maxReconnects?: number;
  /** Send a heartbeat when idle this long. @default the replicator's (WELCOME) */
  heartbeatIntervalMs?: number;
  /** Declare the replicator gone when silent this long. @default 4 heartbeat intervals */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  log?: Logger;
  /** Lets the caller change the bandwidth live. */
  throttle?: Throttle;
  /**
   * Keep replicating changes after the initial sync, until the signal aborts.
   * The tracker must have been started before this call, so writes during the
   * initial sync are caught.
   */
  continuous?: ContinuousOptions;
}

export type SyncMode = "initial" | "resume" | "rescan";

export interface SyncProgress {
  diskId: string;
  mode: SyncMode;
  size: number;
  /** Bytes read and handed to the sender. */
  readOffset: number;
  /** Bytes durable on the replicator (sequential progress; the whole disk during a rescan once done). */
  ackedOffset: number;
  /** Unacknowledged bytes in flight. */
  backlogBytes: number;
  bytesSent: number;
  zeroBytes: number;
  /** Bytes compared during a rescan. */
  rescannedBytes: number;
  startedAt: number;
  resumedFrom: number;
}

export interface SyncResult extends StreamCounters {
  diskId: string;
  sourcePath: string;
  generationId: string;
  mode: SyncMode;
  bytes: number;
  /** Bytes compared with the replicator's hashes during a rescan. */
  rescannedBytes: number;
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
  "DISK_EMPTY",
  "BAD_BLOCK_SIZE",
  "ABORTED",
]);

export async function replicateDisk(options: ReplicateOptions): Promise<SyncResult> {
  const log = options.log ?? silentLogger;
  const source = await openBlockSource(options.sourcePath, options.direct ? { direct: options.direct } : {});
  const throttle = options.throttle ?? new Throttle(options.bandwidthMbps ?? 0);
  let blocks: BlockProcessor;
  try {
    blocks = createBlockProcessor(resolveWorkerCount(options.workers));
  } catch (err) {
    await source.close();
    throw err;
  }
  const started = performance.now();
  const counters = emptyCounters();
  const stalls = emptyStalls();
  const run: RunState = {
    counters,
    stalls,
    rescannedBytes: 0,
    resumedFrom: undefined,
    mode: "initial",
    progressed: false,
  };
  let reconnects = 0;
  let generationId: string | undefined;
  let o = options;
  try {
    for (let attempt = 0; generationId === undefined; attempt++) {
      if (options.signal?.aborted) throw aborted();
      run.progressed = false;
      try {
        generationId = await syncOnce(o, source, blocks, throttle, run, log);
      } catch (err) {
        const fe =
          err instanceof FerryError
            ? err
            : new FerryError("INTERNAL", String(err), { kind: "internal", cause: err });
        // A connection that made progress ends a run of failures: the budget and the backoff start again.
        if (run.progressed) attempt = 0;
        if (fe.code === "GENERATION_UNKNOWN" && !o.resync) {
          // The replicator has nothing for this disk (new replicator, removed volume): nothing to resume, start anew.
          log.warn("the replicator has no volume for this disk; starting a new sync", { diskId: o.diskId });
          o = { ...o, resync: true };
          attempt--;
          continue;
        }
        if (
          FATAL.has(fe.code) ||
          fe.kind === "internal" ||
          attempt >= (options.maxReconnects ?? 8) ||
          options.signal?.aborted
        ) {
          throw err;
        }
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
    await blocks.close();
    await source.close();
  }
  return {
    diskId: options.diskId,
    sourcePath: options.sourcePath,
    generationId,
    mode: run.mode,
    bytes: source.size,
    ...counters,
    rescannedBytes: run.rescannedBytes,
    resumedFrom: run.resumedFrom ?? 0,
    stalls: Object.fromEntries(
      Object.entries(stalls).map(([k, v]) => [k, Math.round(v)]),
    ) as unknown as SyncStalls,
    reconnects,
    seconds: (performance.now() - started) / 1000,
    direct: source.direct,
  };
}

interface RunState {
  counters: StreamCounters;
  stalls: SyncStalls;
  rescannedBytes: number;
  resumedFrom: number | undefined;
  mode: SyncMode;
  /** The current connection got something acknowledged. */
  progressed: boolean;
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

/** One connection's worth of syncing; returns the generation id when the disk is in sync. */
async function syncOnce(
  o: ReplicateOptions,
  source: BlockSource,
  blocks: BlockProcessor,
  throttle: Throttle,
  run: RunState,
  log: Logger,
): Promise<string> {
  const chunkSize = o.chunkSize ?? MiB;
  const hashBlockSize = o.hashBlockSize ?? 64 * 1024;
  if (hashBlockSize < 4096 || hashBlockSize > MiB || (hashBlockSize & (hashBlockSize - 1)) !== 0) {
    throw new FerryError(
      "BAD_BLOCK_SIZE",
      `block size ${hashBlockSize} must be a power of two from 4096 to 1048576`,
    );
  }
  if (chunkSize % hashBlockSize !== 0)
    throw new RangeError("chunk size must be a multiple of the hash block size");
  const size = source.size;
  if (size === 0) throw new FerryError("DISK_EMPTY", `${o.sourcePath} has a size of 0 bytes`);

  const prior = await loadDiskState(o.stateDir, o.sourceServerId, o.diskId);
  const resume =
    !o.resync && prior !== undefined && prior.diskSize === size && prior.hashBlockSize === hashBlockSize;
  const generation = resume ? Buffer.from(prior.generationId, "hex") : randomBytes(16);
  const generationId = generation.toString("hex");

  const conn = await connectReplicator(o.endpoint);
  let stream: DataStream | undefined;
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
    const state: DiskState = {
      sourceServerId: o.sourceServerId,
      diskId: o.diskId,
      sourcePath: o.sourcePath,
      generationId,
      diskSize: size,
      hashBlockSize,
      initialSyncComplete: false,
      updatedAt: "",
    };
    if (!resume) await saveDiskState(o.stateDir, state);
    const startOffset = Number(welcome.resumeOffset);
    run.resumedFrom ??= startOffset;
    // A completed sync whose changes nobody tracked since: compare everything.
    const rescan = resume && startOffset >= size && (!o.continuous || o.continuous.tracker.gap !== undefined);
    run.mode = rescan ? "rescan" : resume ? "resume" : "initial";
    log.info(
      `${run.mode === "initial" ? "starting" : run.mode === "resume" ? "resuming" : "rescanning"} sync`,
      {
        diskId: o.diskId,
        offset: startOffset,
        size,
      },
    );

    stream = new DataStream({
      conn,
      welcome,
      source,
      chunkSize,
      hashBlockSize,
      windowBytes: o.windowBytes ?? 64 * MiB,
      compression: o.compression ?? "auto",
      blocks,
      throttle,
      counters: run.counters,
      stalls: run.stalls,
      onAck: () => (run.progressed = true),
      ...(o.heartbeatIntervalMs ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
      ...(o.idleTimeoutMs ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const s = stream;
    let readOffset = rescan ? 0 : startOffset;
    let lastReport = 0;
    const report = (force = false) => {
      const now = performance.now();
      if (!o.onProgress || (!force && now - lastReport < 200)) return;
      lastReport = now;
      o.onProgress({
        diskId: o.diskId,
        mode: run.mode,
        size,
        readOffset,
        ackedOffset: rescan ? (force ? size : readOffset - s.unackedBytes) : s.ackedEnd,
        backlogBytes: s.unackedBytes,
        bytesSent: run.counters.wireBytes,
        zeroBytes: run.counters.zeroBytes,
        rescannedBytes: run.rescannedBytes,
        startedAt: Date.now(),
        resumedFrom: startOffset,
      });
    };

    const tracker = o.continuous?.tracker;
    const onRead = (off: number) => {
      readOffset = off;
      report();
    };
    // Continuous mode rescans in slices: the read buffers are allocated once per connection.
    let rescanBuffers: Buffer[] | undefined;
    const rescanRange = async (start: number, end: number) => {
      const before = run.mode;
      run.mode = "rescan";
      rescanBuffers ??= source.allocBuffers(2, RESCAN_SPAN);
      await rescanDisk(s, source, hashBlockSize, run, start, end, onRead, rescanBuffers);
      run.mode = before;
    };
    if (!resume) {
      // Everything is read from here on: what the tracker missed before does not matter.
      tracker?.acknowledgeGap();
      tracker?.drain();
      await s.sendRange(0, size, onRead);
    } else if (startOffset < size) {
      const gap = tracker?.gap;
      tracker?.acknowledgeGap();
      await s.sendRange(startOffset, size, onRead);
      // Changes to the part already sent went unobserved while the agent was down.
      if (gap) await rescanRange(0, startOffset);
    } else if (!tracker || tracker.gap) {
      tracker?.acknowledgeGap();
      tracker?.drain();
      await rescanRange(0, size);
      run.mode = "rescan";
    }
    // The whole disk is in sync: a barrier marks it complete (and consistent when nothing tracked it changing).
    const seq = await s.barrier(1, BarrierFlags.INITIAL_SYNC_COMPLETE | BarrierFlags.CONSISTENT);
    await s.waitAcked(seq);
    readOffset = size;
    report(true);
    await saveDiskState(o.stateDir, { ...state, initialSyncComplete: true });
    if (o.continuous) {
      await runContinuous(
        {
          diskId: o.diskId,
          stream: s,
          source,
          log,
          ...(o.signal ? { signal: o.signal } : {}),
          rescan: rescanRange,
          rescannedBytes: () => run.rescannedBytes,
          wireBytes: () => run.counters.wireBytes,
        },
        o.continuous,
      );
      if (o.signal?.aborted) throw aborted();
    }
    return generationId;
  } finally {
    if (stream) stream.close();
    else conn.close();
  }
}

/**
 * Reads every block and sends only those whose hash differs from what the
 * replicator recorded. Hashes are fetched a window ahead of the reads.
 */
async function rescanDisk(
  s: DataStream,
  source: BlockSource,
  hashBlockSize: number,
  run: RunState,
  start: number,
  end: number,
  onProgress: (offset: number) => void,
  buffers: Buffer[],
): Promise<void> {
  const span = RESCAN_SPAN;
  const blocksPerSpan = span / hashBlockSize;
  const size = end;
  const [a, b] = buffers;
  const ask = (off: number) => {
    const first = off / hashBlockSize;
    const count = Math.min(blocksPerSpan, Math.ceil((size - off) / hashBlockSize));
    const p = s.requestHashes(first, count);
    p.catch(() => {});
    return p;
  };
  let bufs = [a!, b!];
  let nextHashes = ask(start);
  let nextRead = source.read(bufs[0]!, start, Math.min(span, size - start));
  nextRead.catch(() => {});
  for (let off = start; off < size; off += span) {
    const want = Math.min(span, size - off);
    const t = performance.now();
    const n = await nextRead;
    run.stalls.readWaitMs += performance.now() - t;
    const remote = await nextHashes;
    const cur = bufs[0]!;
    bufs = [bufs[1]!, cur];
    if (off + span < size) {
      nextHashes = ask(off + span);
      nextRead = source.read(bufs[0]!, off + span, Math.min(span, size - off - span));
      nextRead.catch(() => {});
    }
    if (n < want) {
      throw new FerryError(
        "DISK_SHRANK",
        `${source.path} shrank during the rescan (short read at offset ${off})`,
      );
    }
    for (let at = 0; at < n; at += hashBlockSize) {
      const block = cur.subarray(at, Math.min(at + hashBlockSize, n));
      const i = at / hashBlockSize;
      const th = performance.now();
      const same = recordedHash(block).equals(remote.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      run.stalls.hashMs += performance.now() - th;
      if (same) s.endRun();
      else s.emitBlocks(off + at, block);
    }
    s.endRun();
    // emitBlocks copied what it queued; the buffer can be read into again once the queue is short.
    await s.flushPending(0);
    run.rescannedBytes += n;
    onProgress(off + n);
  }
}
