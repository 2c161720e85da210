import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { AppendableObject, ByteRange } from "./store/object-store.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import { BatchedAppendable } from "./volume-append.ts";

/** Counts the appends that reach the store; fails the one numbered `failAt` (1-based). */
class Counting implements AppendableObject {
  readonly inner: AppendableObject;
  appends = 0;
  failAt = 0;
  constructor(inner: AppendableObject) {
    this.inner = inner;
  }
  get key(): string {
    return this.inner.key;
  }
  get size(): number {
    return this.inner.size;
  }
  async append(parts: readonly Buffer[]): Promise<void> {
    this.appends++;
    if (this.appends === this.failAt) throw new Error("disk full");
    await this.inner.append(parts);
  }
  sync(): Promise<void> {
    return this.inner.sync();
  }
  read(range: ByteRange): Promise<Buffer> {
    return this.inner.read(range);
  }
  seal(): Promise<void> {
    return this.inner.seal();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function withAppendable(fn: (c: Counting, b: BatchedAppendable) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "ferry-append-"));
  const store = new LocalDirectoryStore(dir);
  const c = new Counting(await store.openAppendable("v/seg/000001", { truncateTo: 0 }));
  const b = new BatchedAppendable(c);
  try {
    await fn(c, b);
  } finally {
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test("appends queued during a write go out together, in order, byte for byte", async () => {
  await withAppendable(async (c, b) => {
    const parts = Array.from({ length: 500 }, (_, i) => [
      Buffer.from([i & 0xff]),
      randomBytes(4096 + (i % 7)),
    ]);
    const written = parts.map((p) => b.append(p));
    assert.equal(
      b.size,
      parts.flat().reduce((n, p) => n + p.length, 0),
    );
    await Promise.all(written);
    assert.ok(c.appends <= 3, `500 appends took ${c.appends} writes`);
    const want = Buffer.concat(parts.flat());
    await b.sync();
    assert.deepEqual(await b.read({ offset: 0, length: want.length }), want);
  });
});

test("a read waits for the appends queued before it", async () => {
  await withAppendable(async (_c, b) => {
    const data = randomBytes(65536);
    void b.append([data]);
    // Not awaited: the read itself must wait for the queued write.
    assert.deepEqual(await b.read({ offset: 0, length: data.length }), data);
  });
});

test("after a failed write, that batch, later appends and syncs all fail", async () => {
  await withAppendable(async (c, b) => {
    await b.append([Buffer.from("first")]);
    c.failAt = 2;
    const failed = [b.append([Buffer.from("a")]), b.append([Buffer.from("b")])];
    for (const f of failed) await assert.rejects(f, /disk full/);
    await assert.rejects(b.append([Buffer.from("c")]), /disk full/);
    await assert.rejects(b.sync(), /disk full/);
    assert.deepEqual(await c.read({ offset: 0, length: 5 }), Buffer.from("first"));
  });
});
