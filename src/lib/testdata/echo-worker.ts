/**
 * A worker for the pool's tests: echoes tasks after a delay, throws on request,
 * or dies (process.exit in a worker ends only the thread).
 */
import { parentPort } from "node:worker_threads";
import { serveTasks } from "../worker-pool.ts";

interface EchoTask {
  n: number;
  delayMs?: number;
  fail?: string;
  code?: string;
  die?: boolean;
  bytes?: Uint8Array;
}

if (parentPort) {
  serveTasks(parentPort, (task: EchoTask) => {
    if (task.die) process.exit(3);
    if (task.fail) throw Object.assign(new Error(task.fail), task.code ? { code: task.code } : {});
    if (task.delayMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, task.delayMs);
    const out = task.bytes ? new Uint8Array(task.bytes.map((b) => b + 1)) : undefined;
    return { result: { n: task.n, bytes: out }, transfer: out ? [out.buffer] : [] };
  });
}
