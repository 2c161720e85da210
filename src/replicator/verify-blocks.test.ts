/**
 * The launch's one pass over stored blocks: checked against their hashes and
 * copied to a target, zero blocks (known by their BLAKE3) neither copied nor
 * reported; the same on a verify worker (shared memory) as on this thread.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { blake3Of, blockHashes } from "../wire/index.ts";
import { checkBlocks } from "./verify-blocks.ts";
import { VerifyPool } from "./verify-pool.ts";

const BS = 16 * 1024;

/** Blocks: data, zeros, zeros, data, data, then a short last block of zeros. */
function sample(shared: boolean): Buffer {
  const out = Buffer.from(shared ? new SharedArrayBuffer(5 * BS + 1000) : new ArrayBuffer(5 * BS + 1000));
  randomBytes(BS).copy(out, 0);
  randomBytes(2 * BS).copy(out, 3 * BS);
  return out;
}

const WANT: [number, number][] = [
  [0, BS],
  [3 * BS, 5 * BS],
];

function expectCopied(target: Buffer, data: Buffer): void {
  for (const [a, b] of WANT) assert.ok(target.subarray(a, b).equals(data.subarray(a, b)), `${a}-${b}`);
  assert.ok(
    target.subarray(BS, 3 * BS).every((x) => x === 0xee),
    "zero blocks are not copied",
  );
}

test("checkBlocks: copies data blocks, skips zero blocks by hash, reports the runs; stops at a bad block", () => {
  const data = sample(false);
  const hashes = blockHashes(data, BS);
  const target = Buffer.alloc(data.length).fill(0xee);
  assert.deepEqual(checkBlocks(data, BS, hashes, blake3Of, target), { bad: -1, runs: WANT });
  expectCopied(target, data);
  assert.deepEqual(checkBlocks(data, BS, hashes, blake3Of), { bad: -1, runs: WANT }, "without a target");
  data.writeUInt8(data.readUInt8(4 * BS + 7) ^ 1, 4 * BS + 7);
  assert.deepEqual(checkBlocks(data, BS, hashes, blake3Of, target), { bad: 4, runs: [] });
});

test("VerifyPool.check: the same on a worker (shared memory) as on this thread", async () => {
  const pool = new VerifyPool(1);
  try {
    for (const shared of [true, false]) {
      const data = sample(shared);
      const hashes = blockHashes(data, BS);
      const target = Buffer.from(new SharedArrayBuffer(data.length + BS)).fill(0xee);
      assert.deepEqual(
        await pool.check(data, BS, hashes, target),
        { bad: -1, runs: WANT },
        `shared ${shared}`,
      );
      expectCopied(target, data);
      assert.equal(target[data.length], 0xee, "nothing past the data");
      data.writeUInt8(data.readUInt8(BS / 2) ^ 1, BS / 2);
      assert.deepEqual(await pool.check(data, BS, hashes, target), { bad: 0, runs: [] }, `shared ${shared}`);
    }
    await assert.rejects(pool.check(sample(true), BS, Buffer.alloc(0), Buffer.alloc(BS)), /cannot take/);
  } finally {
    await pool.close();
  }
});

test("a pool of two workers used one task at a time lets the process exit (its second worker idle)", async () => {
  const script = `
    import { VerifyPool } from ${JSON.stringify(new URL("./verify-pool.ts", import.meta.url).href)};
    import { blockHashes } from ${JSON.stringify(new URL("../wire/index.ts", import.meta.url).href)};
    const pool = new VerifyPool(2);
    const data = Buffer.from(new SharedArrayBuffer(4 * ${BS})).fill(3);
    const h = blockHashes(data, ${BS});
    for (let i = 0; i < 3; i++) await pool.firstBadBlock(data, ${BS}, h);
    console.log("verified");
  `;
  // A file, not --eval: the workers would inherit --input-type.
  const dir = await mkdtemp(join(tmpdir(), "ferry-verify-pool-"));
  try {
    await writeFile(join(dir, "pool.mjs"), script);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", join(dir, "pool.mjs")],
      { timeout: 20_000 },
    );
    assert.equal(stdout.trim(), "verified");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
