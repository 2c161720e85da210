/**
 * Worker thread entry of the replicator's payload check: runs checkPayload on
 * each task (the payload is read in place from shared memory) and moves the
 * decompressed bytes back instead of copying them.
 */
import { parentPort } from "node:worker_threads";
import { serveTasks } from "../lib/worker-pool.ts";
import { checkPayload, type PayloadTask } from "./payload-check.ts";

if (parentPort) {
  serveTasks(parentPort, (task: PayloadTask) => {
    const result = checkPayload(task);
    if (!result.ok || !result.data) return { result };
    const d = result.data;
    // zstd's output may sit in a larger buffer: move only a buffer that is the data alone.
    const own = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength ? d : new Uint8Array(d);
    return { result: { ok: true, data: own }, transfer: [own.buffer as ArrayBuffer] };
  });
}
