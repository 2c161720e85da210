/**
 * Worker thread entry of the block pool: runs processChunk on each task and
 * sends the result back with its buffers transferred, not copied.
 */
import { parentPort } from "node:worker_threads";
import { processChunk, type ChunkTask } from "./block-task.ts";
import { serveTasks } from "../../lib/worker-pool.ts";

if (parentPort) {
  serveTasks(parentPort, (task: ChunkTask) => {
    const result = processChunk(task);
    const transfer: ArrayBuffer[] = [];
    for (const run of result.runs) {
      run.hashes = owned(run.hashes);
      transfer.push(run.hashes.buffer as ArrayBuffer);
      if (run.inPlace) continue;
      run.payload = owned(run.payload);
      transfer.push(run.payload.buffer as ArrayBuffer);
    }
    transfer.push(result.zero.buffer as ArrayBuffer);
    return { result, transfer };
  });
}

/**
 * A view that is alone in its ArrayBuffer, so transferring it moves nothing
 * else: small Buffers share Node's allocation pool, and zstd's output sits in
 * a larger buffer.
 */
function owned(v: Uint8Array): Uint8Array {
  return v.byteOffset === 0 &&
    v.byteLength === v.buffer.byteLength &&
    !(v.buffer instanceof SharedArrayBuffer)
    ? v
    : new Uint8Array(v);
}
