import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { zstdCompressSync } from "node:zlib";
import { Compression, blockHashes } from "../wire/index.ts";
import { checkPayload, type PayloadTask } from "./payload-check.ts";
import { createPayloadChecker, resolveVerifyWorkers } from "./payload-checker.ts";
import { FramePool } from "./frame-pool.ts";

const HBS = 64 * 1024;

function rawTask(data: Buffer): PayloadTask {
  return {
    payload: data,
    compression: Compression.NONE,
    length: data.length,
    hashes: blockHashes(data, HBS),
    hashBlockSize: HBS,
  };
}

/** The same bytes in the frame pool's shared memory, as the decoder leaves a large frame. */
function inShared(pool: FramePool, data: Buffer): Buffer {
  const b = pool.allocate(data.length);
  data.copy(b);
  return b;
}

test("a raw payload whose hashes match passes; one changed byte anywhere fails", () => {
  const data = randomBytes(3 * HBS + 100);
  assert.deepEqual(checkPayload(rawTask(data)), { ok: true });
  const t = rawTask(data);
  const bad = Buffer.from(data);
  bad[2 * HBS + 7]! ^= 1;
  assert.deepEqual(checkPayload({ ...t, payload: bad }), { ok: false, why: "hash" });
});

test("a zstd payload is decompressed within its declared length and checked", () => {
  const data = Buffer.alloc(2 * HBS, "log line 42\n");
  const task: PayloadTask = {
    ...rawTask(data),
    payload: zstdCompressSync(data),
    compression: Compression.ZSTD,
  };
  const r = checkPayload(task);
  assert.ok(r.ok && r.data);
  assert.ok(Buffer.from(r.data).equals(data));
  // Declaring fewer raw bytes than the payload holds: refused by the output limit, never a larger buffer.
  const short = checkPayload({ ...task, length: HBS, hashes: blockHashes(data.subarray(0, HBS), HBS) });
  assert.equal(short.ok, false);
  const garbage = checkPayload({ ...task, payload: randomBytes(200) });
  assert.deepEqual(garbage.ok ? "ok" : garbage.why, "decompress");
});

test("on worker threads: shared payloads are checked in place, damage is found, zstd output comes back", async () => {
  const checker = createPayloadChecker(1);
  const pool = new FramePool({ shared: true });
  try {
    const data = randomBytes(16 * HBS);
    const good = inShared(pool, data);
    assert.ok(good.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(await checker.check({ ...rawTask(data), payload: good }), { ok: true });

    const damaged = inShared(pool, data);
    damaged[5 * HBS]! ^= 0x80;
    assert.deepEqual(await checker.check({ ...rawTask(data), payload: damaged }), { ok: false, why: "hash" });

    const text = Buffer.alloc(8 * HBS, "GET /api/v1/items status=200\n");
    const z = inShared(pool, zstdCompressSync(text));
    const r = await checker.check({ ...rawTask(text), payload: z, compression: Compression.ZSTD });
    assert.ok(r.ok && r.data);
    assert.ok(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).equals(text));

    // Ordinary memory is checked on the event loop, with the same verdicts.
    const plain = Buffer.from(data);
    plain[0]! ^= 1;
    assert.deepEqual(await checker.check({ ...rawTask(data), payload: plain }), { ok: false, why: "hash" });
  } finally {
    await checker.close();
  }
});

test("the verify worker count: auto is none on 2 cores, else 2–4; 0 means the event loop; nonsense is refused", () => {
  const auto = resolveVerifyWorkers("auto");
  if (availableParallelism() <= 2) assert.equal(auto, 0);
  else assert.ok(auto >= 2 && auto <= 4);
  assert.equal(resolveVerifyWorkers(0), 0);
  assert.throws(() => resolveVerifyWorkers(-1), /verify worker count -1/);
  assert.throws(() => resolveVerifyWorkers(1.5), /verify worker count 1.5/);
});
