/** The write path's memory bounds: the open segment is sealed by its size or by its in-memory index, and reopens scan it a window at a time. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { blockHashes } from "../wire/index.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import { StagingVolume } from "./volume.ts";

const BS = 4096;
const SERVER = "s-0123456789abcdef0";

function block(seed: number): Buffer {
  const b = Buffer.alloc(BS);
  for (let i = 0; i < BS; i += 4) b.writeUInt32LE((seed * 2654435761 + i * 97) >>> 0, i);
  return b;
}

async function withVolume(
  o: { segmentIndexBytes?: number },
  fn: (store: LocalDirectoryStore, open: () => Promise<StagingVolume>) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "ferry-volume-"));
  const store = new LocalDirectoryStore(dir);
  try {
    await fn(store, () => StagingVolume.open(store, SERVER, "d", o));
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test("many small writes: the open segment is sealed at a flush once its index reaches segmentIndexBytes; every block reads back, also after a reopen", async () => {
  // 56 index bytes per one-block record: 2 KiB is 37 records.
  await withVolume({ segmentIndexBytes: 2048 }, async (store, open) => {
    const vol = await open();
    await vol.startGeneration({
      generationId: "ab".repeat(16),
      diskSize: 256 * BS,
      logicalBlockSize: 512,
      hashBlockSize: BS,
    });
    const order = Array.from({ length: 200 }, (_, i) => (i * 37) % 256);
    for (const [i, b] of order.entries()) {
      await vol.writeData(b * BS, block(b), blockHashes(block(b), BS));
      if (i % 10 === 9) await vol.flush({ durableSeq: i + 1 });
    }
    await vol.flush({ durableSeq: order.length });
    const sealed = vol.sealedSegments();
    assert.ok(sealed.length >= 4 && sealed.length <= 6, `${sealed.length} sealed segments`);
    for (const b of order) assert.deepEqual(await vol.readBlock(b), block(b), `block ${b}`);
    await vol.close();
    const again = await open();
    assert.equal(again.sealedSegments().length, sealed.length);
    for (const b of order) assert.deepEqual(await again.readBlock(b), block(b), `block ${b} after reopen`);
    const never = Array.from({ length: 256 }, (_, b) => b).find((b) => !order.includes(b))!;
    assert.deepEqual(await again.readBlock(never), Buffer.alloc(BS));
    await again.close();
    assert.ok((await store.list(`volumes/${SERVER}/d/seg/`)).length >= 4);
  });
});

test("an open segment larger than the scan window reopens with every block (recovery reads it a window at a time)", async () => {
  await withVolume({}, async (_store, open) => {
    const vol = await open();
    const blocks = 24 * 256; // 24 MiB of 4 KiB blocks in 1 MiB writes: more than one 16 MiB window
    await vol.startGeneration({
      generationId: "cd".repeat(16),
      diskSize: blocks * BS,
      logicalBlockSize: 512,
      hashBlockSize: BS,
    });
    for (let b = 0; b < blocks; b += 256) {
      const data = Buffer.concat(Array.from({ length: 256 }, (_, i) => block(b + i)));
      await vol.writeData(b * BS, data, blockHashes(data, BS));
    }
    await vol.writeData(5 * BS, block(99_999), blockHashes(block(99_999), BS)); // a later record wins
    await vol.flush({ durableSeq: 1 });
    assert.equal(vol.sealedSegments().length, 0);
    await vol.close();
    const again = await open();
    for (const b of [0, 5, 4095, 4096, blocks - 1]) {
      assert.deepEqual(await again.readBlock(b), b === 5 ? block(99_999) : block(b), `block ${b}`);
    }
    assert.deepEqual(await again.readHashes(5, 1), blockHashes(block(99_999), BS));
    await again.close();
  });
});
