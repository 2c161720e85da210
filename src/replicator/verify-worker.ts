/**
 * Worker thread of the verify pool (verify-pool.ts): checks blocks held in
 * shared memory against their recorded BLAKE3 hashes, in place.
 */
import { parentPort } from "node:worker_threads";
import { blake3 } from "@napi-rs/blake-hash";
import type { VerifyReply, VerifyTask } from "./verify-pool.ts";

parentPort?.on("message", (t: VerifyTask) => {
  let bad = -1;
  try {
    const data = Buffer.from(t.memory, t.offset, t.length);
    const n = Math.ceil(t.length / t.blockSize);
    for (let i = 0; i < n; i++) {
      const got = blake3(data.subarray(i * t.blockSize, Math.min((i + 1) * t.blockSize, t.length)));
      if (!got.equals(Buffer.from(t.hashes.buffer, t.hashes.byteOffset + i * 32, 32))) {
        bad = i;
        break;
      }
    }
    parentPort!.postMessage({ id: t.id, bad } satisfies VerifyReply);
  } catch (err) {
    parentPort!.postMessage({ id: t.id, bad, error: String(err) } satisfies VerifyReply);
  }
});
