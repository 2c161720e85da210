/**
 * Where the block pipeline's per-byte work runs: a pool of worker threads, or
 * the event loop itself (`workers: 0`, and for the small synchronous paths).
 */
import { availableParallelism } from "node:os";
import { FerryError } from "../../lib/errors.ts";
import { processChunk, type ChunkResult, type ChunkTask } from "./block-task.ts";
import { WorkerPool } from "../../lib/worker-pool.ts";

export type { ChunkResult, DataRun } from "./block-task.ts";

/** Worker threads for `workers: "auto"`: the cores but one (the event loop's), at least 1, at most 4. */
export function resolveWorkerCount(workers: number | "auto" | undefined): number {
  if (workers === undefined || workers === "auto")
    return Math.max(1, Math.min(4, availableParallelism() - 1));
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) {
    throw new FerryError(
      "BAD_WORKER_COUNT",
      `worker count ${workers} must be an integer from 0 to 64 (or auto); 0 hashes and compresses on the event loop`,
    );
  }
  return workers;
}

export interface BlockProcessor {
  /** Worker threads (0: the work runs on the event loop). */
  readonly workers: number;
  /**
   * Zero blocks, hashes and payloads of one chunk. `data` should be a view of a
   * SharedArrayBuffer: the workers then read it in place; other memory is copied.
   * The chunk may be reused once the promise settles.
   */
  process(task: ChunkTask): Promise<ChunkResult>;
  close(): Promise<void>;
}

export function createBlockProcessor(workers: number): BlockProcessor {
  if (workers === 0) {
    return {
      workers: 0,
      process: (task) => {
        try {
          return Promise.resolve(processChunk(task));
        } catch (err) {
          return Promise.reject(err as Error);
        }
      },
      close: () => Promise.resolve(),
    };
  }
  const pool = new WorkerPool<ChunkTask, ChunkResult>({
    url: new URL("./block-worker.ts", import.meta.url),
    size: workers,
    name: "block worker",
  });
  return {
    workers,
    process: (task) => {
      if (task.data.buffer instanceof SharedArrayBuffer) return pool.run(task);
      // Posting a view of ordinary memory would clone its whole ArrayBuffer (a read slab): copy just the chunk.
      const own = new Uint8Array(task.data);
      return pool.run({ ...task, data: own }, [own.buffer]);
    },
    close: () => pool.close(),
  };
}
