/**
 * Worker thread of the verify pool (verify-pool.ts): checks blocks held in
 * shared memory against their recorded BLAKE3 hashes, in place, and copies
 * them to a target in shared memory when the task names one.
 */
import { parentPort } from "node:worker_threads";
import { blake3 } from "@napi-rs/blake-hash";
import { checkBlocks } from "./verify-blocks.ts";
import type { VerifyReply, VerifyTask } from "./verify-pool.ts";

parentPort?.on("message", (t: VerifyTask) => {
  try {
    const data = Buffer.from(t.memory, t.offset, t.length);
    const target = t.target && Buffer.from(t.target.memory, t.target.offset, t.target.length);
    const { bad, runs } = checkBlocks(data, t.blockSize, t.hashes, blake3, target);
    parentPort!.postMessage({ id: t.id, bad, ...(target ? { runs } : {}) } satisfies VerifyReply);
  } catch (err) {
    parentPort!.postMessage({ id: t.id, bad: -1, error: String(err) } satisfies VerifyReply);
  }
});
