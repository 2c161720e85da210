import { test } from "node:test";
import assert from "node:assert/strict";
import { FerryError } from "./errors.ts";
import { WorkerPool } from "./worker-pool.ts";

interface EchoTask {
  n: number;
  delayMs?: number;
  fail?: string;
  code?: string;
  die?: boolean;
  bytes?: Uint8Array;
}
interface EchoResult {
  n: number;
  bytes?: Uint8Array;
}

const url = new URL("./testdata/echo-worker.ts", import.meta.url);

test("results come back for each task; awaited in submission order they keep it", async () => {
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 3 });
  try {
    // Early tasks are slower than later ones: completion order differs from submission order.
    const finished: number[] = [];
    const promises = Array.from({ length: 12 }, (_, n) => {
      const p = pool.run({ n, delayMs: (12 - n) * 3 });
      void p.then((r) => finished.push(r.n));
      return p;
    });
    const inOrder: number[] = [];
    for (const p of promises) inOrder.push((await p).n);
    assert.deepEqual(inOrder, [...Array(12).keys()]);
    assert.notDeepEqual(finished, inOrder, "workers finished out of order (the test is meaningful)");
    assert.equal(pool.outstanding, 0);
  } finally {
    await pool.close();
  }
});

test("buffers are transferred both ways, not shared", async () => {
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 1 });
  try {
    const bytes = new Uint8Array([1, 2, 3]);
    const r = await pool.run({ n: 0, bytes }, [bytes.buffer]);
    assert.equal(bytes.byteLength, 0, "the sent buffer moved to the worker");
    assert.deepEqual([...r.bytes!], [2, 3, 4]);
  } finally {
    await pool.close();
  }
});

test("a task's error rejects that task only, with its message and code", async () => {
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 1 });
  try {
    const bad = pool.run({ n: 1, fail: "no such block" });
    const coded = pool.run({ n: 2, fail: "disk gone", code: "DISK_READ_FAILED" });
    const good = pool.run({ n: 3 });
    await assert.rejects(bad, /no such block/);
    await assert.rejects(coded, (e: unknown) => e instanceof FerryError && e.code === "DISK_READ_FAILED");
    assert.equal((await good).n, 3);
  } finally {
    await pool.close();
  }
});

test("a worker that dies fails its outstanding tasks with WORKER_FAILED and is replaced", async () => {
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 1, name: "test worker" });
  try {
    const queuedBehind = pool.run({ n: 1, delayMs: 50 });
    const dying = pool.run({ n: 2, die: true });
    const afterDeath = pool.run({ n: 3 });
    assert.equal((await queuedBehind).n, 1);
    for (const p of [dying, afterDeath]) {
      await assert.rejects(p, (e: unknown) => {
        return (
          e instanceof FerryError && e.code === "WORKER_FAILED" && /test worker thread died/.test(e.message)
        );
      });
    }
    // The next task gets a new worker.
    assert.equal((await pool.run({ n: 4 })).n, 4);
  } finally {
    await pool.close();
  }
});

test("close fails what is outstanding and refuses new tasks", async () => {
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 1 });
  const slow = assert.rejects(
    pool.run({ n: 1, delayMs: 200 }),
    (e: unknown) => e instanceof FerryError && e.code === "WORKER_POOL_CLOSED",
  );
  await pool.close();
  await slow;
  await assert.rejects(
    pool.run({ n: 2 }),
    (e: unknown) => e instanceof FerryError && e.code === "WORKER_POOL_CLOSED",
  );
});

test("an idle pool does not keep the process alive", async () => {
  // If it did, the test runner would time out on this file after the tests: the pool is never closed.
  const pool = new WorkerPool<EchoTask, EchoResult>({ url, size: 2 });
  assert.equal((await pool.run({ n: 7 })).n, 7);
});
