/**
 * Where payloads are checked: on worker threads when the payload lies in
 * shared memory (the frame pool's buffers: every large frame), on the event
 * loop otherwise (small frames, and `workers: 0`). Off the event loop, BLAKE3
 * and zstd no longer hold up reading the socket (TLS decryption, framing),
 * which only the event loop can do.
 */
import { availableParallelism } from "node:os";
import { FerryError } from "../lib/errors.ts";
import { WorkerPool } from "../lib/worker-pool.ts";
import type { DataFrame } from "../wire/index.ts";
import { checkPayload, type PayloadResult, type PayloadTask } from "./payload-check.ts";

export interface PayloadChecker {
  readonly workers: number;
  check(task: PayloadTask): Promise<PayloadResult>;
  close(): Promise<void>;
}

/**
 * Worker threads for `"auto"`: none on 2 cores or fewer, else the cores but
 * one (the event loop's), at most 4. On 2 cores the hand-off costs more than
 * it saves: with the agent on the same machine (bench/initial-sync, 1 GiB,
 * 3 interleaved pairs) a worker made the replicator use 15% more CPU and the
 * sync 10% slower.
 */
export function resolveVerifyWorkers(workers: number | "auto" | undefined): number {
  if (workers === undefined || workers === "auto") {
    const cores = availableParallelism();
    return cores <= 2 ? 0 : Math.min(4, cores - 1);
  }
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) {
    throw new FerryError(
      "BAD_WORKER_COUNT",
      `verify worker count ${workers} must be an integer from 0 to 64 (or auto); 0 checks payloads on the event loop`,
    );
  }
  return workers;
}

export function createPayloadChecker(workers: number): PayloadChecker {
  const inline = (task: PayloadTask) => {
    try {
      return Promise.resolve(checkPayload(task));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  };
  if (workers === 0) return { workers: 0, check: inline, close: () => Promise.resolve() };
  // Started with the first large payload: a replicator that never gets one starts no thread.
  let pool: WorkerPool<PayloadTask, PayloadResult> | undefined;
  let closed = false;
  return {
    workers,
    check: (task) => {
      // Posting ordinary memory would copy it (or a whole TLS chunk): check those here.
      if (!(task.payload.buffer instanceof SharedArrayBuffer) || closed) return inline(task);
      pool ??= new WorkerPool<PayloadTask, PayloadResult>({
        url: new URL("./payload-worker.ts", import.meta.url),
        size: workers,
        name: "payload check",
      });
      return pool.run(task);
    },
    close: async () => {
      closed = true;
      await pool?.close();
    },
  };
}

/** Decompresses and verifies a DATA frame's payload (on `checker`'s workers, else here); never lets damaged data through. */
export async function preparePayload(
  frame: DataFrame,
  hashBlockSize: number,
  checker: PayloadChecker | undefined,
): Promise<Buffer> {
  const task = {
    payload: frame.payload,
    compression: frame.compression,
    length: frame.length,
    hashes: frame.hashes,
    hashBlockSize,
  };
  const r = checker ? await checker.check(task) : checkPayload(task);
  if (!r.ok && r.why === "decompress") {
    throw new FerryError(
      "DATA_CHECKSUM_MISMATCH",
      `DATA at offset ${frame.offset} does not decompress (${r.message ?? "corrupt"}): damaged in transit, not written`,
    );
  }
  if (!r.ok) {
    throw new FerryError(
      "DATA_CHECKSUM_MISMATCH",
      `DATA at offset ${frame.offset} failed its BLAKE3 check: damaged in transit, not written; the agent resends it`,
      { details: { offset: Number(frame.offset) } },
    );
  }
  if (!r.data) return frame.payload;
  return Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
}
