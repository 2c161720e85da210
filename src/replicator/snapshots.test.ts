import assert from "node:assert/strict";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { FerryError } from "../lib/errors.ts";
import { blockHashes } from "../wire/index.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../../test/support/s3rver.ts";
import { collectGarbage } from "./snapshots-gc.ts";
import { StoreCatalog, listManifests, openCatalog } from "./snapshots.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { S3Store } from "./store/s3-store.ts";
import { StagingVolume, type SnapshotManifest } from "./volume.ts";

const BS = 4096;
const SERVER = "s-snaptest000000000";

function block(seed: number): Buffer {
  const b = Buffer.alloc(BS);
  for (let i = 0; i < BS; i += 4) b.writeUInt32LE((seed * 2654435761 + i * 97) >>> 0, i);
  return b;
}

async function newVolume(store: ObjectStore, disk: string, blocks: number): Promise<StagingVolume> {
  const vol = await StagingVolume.open(store, SERVER, disk);
  await vol.startGeneration({
    generationId: "ab".repeat(16),
    diskSize: blocks * BS,
    logicalBlockSize: 512,
    hashBlockSize: BS,
  });
  return vol;
}

async function put(vol: StagingVolume, b: number, data: Buffer): Promise<void> {
  await vol.writeData(b * BS, data, blockHashes(data, BS));
}

async function tempStore(): Promise<{ store: LocalDirectoryStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "ferry-snap-"));
  return { store: new LocalDirectoryStore(dir), dir };
}

for (const backend of ["local", "s3"] as const) {
  describe(`snapshots on the ${backend} store`, { timeout: 60_000 }, () => {
    let store: ObjectStore;
    let cleanup: () => Promise<void>;
    before(async () => {
      if (backend === "local") {
        const t = await tempStore();
        store = t.store;
        cleanup = () => rm(t.dir, { recursive: true, force: true });
      } else {
        const s3 = await startS3rver("ferry-snap");
        store = new S3Store({
          bucket: "ferry-snap",
          endpoint: s3.endpoint,
          forcePathStyle: true,
          credentials: S3RVER_CREDENTIALS,
        });
        cleanup = () => s3.close();
      }
    });
    after(async () => {
      await store.close();
      await cleanup();
    });

    test("a snapshot keeps what was written before it; later writes change only the head", async () => {
      const vol = await newVolume(store, "d1", 16);
      for (let b = 0; b < 8; b++) await put(vol, b, block(b));
      await vol.writeZero(3 * BS, BS);
      await vol.flush({ initialSyncComplete: true });
      const s1 = await vol.snapshot({ barrierId: 1, reason: "initial-sync" });
      await put(vol, 1, block(100));
      await put(vol, 12, block(112));
      await vol.writeZero(0, BS);
      await vol.flush();
      const s2 = await vol.snapshot({ barrierId: 2, reason: "policy" });
      await vol.close();

      const catalog = new StoreCatalog(store);
      const r1 = await catalog.open(SERVER, "d1", s1.snapshotId);
      assert.deepEqual(await r1.read(0, BS), block(0));
      assert.deepEqual(await r1.read(BS, BS), block(1));
      assert.deepEqual(await r1.read(3 * BS, BS), Buffer.alloc(BS));
      assert.deepEqual(await r1.read(12 * BS, BS), Buffer.alloc(BS));
      assert.deepEqual(await r1.read(BS + 100, 200), block(1).subarray(100, 300));
      const r2 = await catalog.open(SERVER, "d1", s2.snapshotId);
      assert.deepEqual(await r2.read(0, 2 * BS), Buffer.concat([Buffer.alloc(BS), block(100)]));
      assert.deepEqual(await r2.read(12 * BS, BS), block(112));
      const extents = [];
      for await (const e of r2.extents()) extents.push(e);
      assert.deepEqual(extents.slice(0, 3), [
        { offset: 0, length: BS, zero: true },
        { offset: BS, length: 2 * BS, zero: false },
        { offset: 3 * BS, length: BS, zero: true },
      ]);
      await r1.close();
      await r2.close();
      assert.deepEqual(
        (await catalog.list(SERVER)).filter((i) => i.diskId === "d1").map((i) => i.snapshotId),
        [s1.snapshotId, s2.snapshotId],
      );
    });

    test("a block identical to the head's is not stored again", async () => {
      const vol = await newVolume(store, "d2", 8);
      for (let b = 0; b < 8; b++) await put(vol, b, block(b));
      await vol.flush();
      await vol.snapshot({ barrierId: 1, reason: "policy" });
      const before = (await store.list(`${vol.prefix}seg/`)).reduce((a, o) => a + o.size, 0);
      for (let b = 0; b < 8; b++) await put(vol, b, block(b));
      await vol.flush();
      await vol.snapshot({ barrierId: 2, reason: "policy" });
      const after = (await store.list(`${vol.prefix}seg/`)).reduce((a, o) => a + o.size, 0);
      assert.equal(after, before, "a rescan of an unchanged disk writes nothing");
      await vol.close();
    });

    test("a new generation keeps the retained snapshots", async () => {
      const vol = await newVolume(store, "d3", 8);
      await put(vol, 2, block(2));
      await vol.flush();
      const s = await vol.snapshot({ barrierId: 1, reason: "policy" });
      await vol.startGeneration({
        generationId: "cd".repeat(16),
        diskSize: 4 * BS,
        logicalBlockSize: 512,
        hashBlockSize: BS,
      });
      await put(vol, 2, block(99));
      await vol.flush();
      await vol.close();
      const r = await new StoreCatalog(store).open(SERVER, "d3", s.snapshotId);
      assert.deepEqual(await r.read(2 * BS, BS), block(2));
      await r.close();
      const again = await StagingVolume.open(store, SERVER, "d3");
      assert.equal(again.meta.diskSize, 4 * BS);
      assert.deepEqual(await again.readRange(2 * BS, BS), block(99));
      assert.deepEqual(await again.readRange(0, BS), Buffer.alloc(BS), "the new geometry starts from zeros");
      await again.close();
    });
  });
}

describe("damage and crashes (local store)", () => {
  test("a damaged byte in a segment: the reader throws SNAPSHOT_DAMAGED with the offset, never wrong bytes", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "d", 8);
      for (let b = 0; b < 4; b++) await put(vol, b, block(b));
      await vol.flush();
      const s = await vol.snapshot({ barrierId: 1, reason: "policy" });
      const at = vol.locateBlock(2)!;
      await vol.close();
      const fh = await open(join(dir, at.key), "r+");
      await fh.write(Buffer.from([0xff]), 0, 1, at.offset + 17);
      await fh.close();
      const r = await openCatalog(dir).open(SERVER, "d", s.snapshotId);
      assert.deepEqual(
        await r.read(0, 2 * BS),
        Buffer.concat([block(0), block(1)]),
        "intact blocks still read",
      );
      await assert.rejects(
        r.read(0, 4 * BS),
        (e) => e instanceof FerryError && e.code === "SNAPSHOT_DAMAGED" && e.details.offset === 2 * BS,
      );
      await r.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("readInto writes the same bytes as read into shared memory (worker copy), skips zeros, and fails a damaged run", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "w", 16);
      const run = Buffer.concat([0, 1, 2, 3, 4, 5].map(block));
      await vol.writeData(2 * BS, run, blockHashes(run, BS)); // one record: blocks 2..7 adjacent in the segment
      await put(vol, 9, block(9));
      await vol.flush();
      const s = await vol.snapshot({ barrierId: 1, reason: "policy" });
      const at = vol.locateBlock(6)!;
      await vol.close();
      const r = await openCatalog(dir).open(SERVER, "w", s.snapshotId);
      for (const [offset, length] of [
        [2 * BS, 6 * BS], // one run: hashed and copied by the worker
        [3 * BS + 100, 2 * BS], // inside the run, unaligned
        [0, 16 * BS], // zeros, the run and another record
      ] as const) {
        const target = Buffer.from(new SharedArrayBuffer(length + BS)).fill(0xee);
        const runs = await r.readInto(offset, length, target);
        const want = await r.read(offset, length);
        const got = Buffer.alloc(length);
        for (const [a, b] of runs) target.copy(got, a, a, b);
        assert.deepEqual(got, want, `${offset}+${length}`);
        for (let i = 1; i < runs.length; i++)
          assert.ok(runs[i - 1]![1] < runs[i]![0], "runs in order, merged");
        const covered = runs.reduce((n, [a, b]) => n + b - a, 0);
        const zeroBytes = offset === 0 ? 9 * BS : 0; // blocks 0, 1, 8, 10–15
        assert.equal(covered, length - zeroBytes, `${offset}+${length}: only data is written`);
        assert.equal(target[length], 0xee, "nothing past the range");
      }
      await r.close();

      const fh = await open(join(dir, at.key), "r+");
      await fh.write(Buffer.from([0xff]), 0, 1, at.offset + 5);
      await fh.close();
      const damaged = await openCatalog(dir).open(SERVER, "w", s.snapshotId);
      await assert.rejects(
        damaged.readInto(2 * BS, 6 * BS, Buffer.from(new SharedArrayBuffer(6 * BS))),
        (e) => e instanceof FerryError && e.code === "SNAPSHOT_DAMAGED" && e.details.offset === 6 * BS,
      );
      await damaged.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("readWith lends the same bytes as read (direct, verified on a worker) and fails a damaged run before lending", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "w", 16);
      const run = Buffer.concat([0, 1, 2, 3, 4, 5].map(block));
      await vol.writeData(2 * BS, run, blockHashes(run, BS)); // one record: blocks 2..7 adjacent in the segment
      await put(vol, 9, block(9));
      await vol.flush();
      const s = await vol.snapshot({ barrierId: 1, reason: "policy" });
      const at = vol.locateBlock(6)!;
      await vol.close();
      const r = await openCatalog(dir).open(SERVER, "w", s.snapshotId);
      for (const [offset, length] of [
        [2 * BS, 6 * BS], // one run: lent from the store's buffer
        [3 * BS + 100, 2 * BS], // inside the run, unaligned
        [0, 16 * BS], // zeros, the run and another record: read and lent
      ] as const) {
        const lent = await r.readWith(offset, length, async (b) => Buffer.from(b));
        assert.deepEqual(lent, await r.read(offset, length), `${offset}+${length}`);
      }
      await r.close();

      const fh = await open(join(dir, at.key), "r+");
      await fh.write(Buffer.from([0xff]), 0, 1, at.offset + 5);
      await fh.close();
      const damaged = await openCatalog(dir).open(SERVER, "w", s.snapshotId);
      let used = false;
      await assert.rejects(
        damaged.readWith(2 * BS, 6 * BS, async () => {
          used = true;
        }),
        (e) => e instanceof FerryError && e.code === "SNAPSHOT_DAMAGED" && e.details.offset === 6 * BS,
      );
      assert.equal(used, false, "damaged bytes are never lent");
      await damaged.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("records appended after the last flush are dropped on reopen; flushed ones stay", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "d", 8);
      await put(vol, 0, block(1));
      await vol.flush({ durableSeq: 1 });
      await put(vol, 1, block(2)); // never flushed: the process "dies" here
      const again = await StagingVolume.open(store, SERVER, "d");
      assert.equal(again.meta.durableSeq, 1);
      assert.deepEqual(await again.readRange(0, 2 * BS), Buffer.concat([block(1), Buffer.alloc(BS)]));
      await put(again, 1, block(3));
      await again.flush({ durableSeq: 2 });
      await again.close();
      await vol.close();
      const third = await StagingVolume.open(store, SERVER, "d");
      assert.deepEqual(await third.readRange(0, 2 * BS), Buffer.concat([block(1), block(3)]));
      await third.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("recovery from a crash inside a seal or a merge (local store)", () => {
  test("sealed and renamed but the head record not updated: the segment is accepted as sealed", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "d", 8);
      await put(vol, 0, block(1));
      await vol.flush({ durableSeq: 1 });
      const headBefore = await store.getMeta(`${vol.prefix}meta.json`);
      await vol.snapshot({ barrierId: 1, reason: "policy" });
      await vol.close();
      await store.putMeta(`${vol.prefix}meta.json`, headBefore!); // the crash: the last head write never happened
      const again = await StagingVolume.open(store, SERVER, "d");
      assert.deepEqual(await again.readRange(0, BS), block(1));
      await put(again, 1, block(2));
      await again.flush({ durableSeq: 2 });
      await again.close();
      const third = await StagingVolume.open(store, SERVER, "d");
      assert.deepEqual(await third.readRange(0, 2 * BS), Buffer.concat([block(1), block(2)]));
      await third.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a trailer appended but not renamed: the open segment is cut back to its committed length", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "d", 8);
      await put(vol, 0, block(1));
      await vol.flush({ durableSeq: 1 });
      const at = vol.locateBlock(0)!;
      await vol.close();
      const fh = await open(join(dir, `${at.key}.open`), "a");
      await fh.write(Buffer.alloc(300, 0xab)); // half a trailer
      await fh.close();
      const again = await StagingVolume.open(store, SERVER, "d");
      await put(again, 2, block(3));
      await again.flush({ durableSeq: 2 });
      const s = await again.snapshot({ barrierId: 1, reason: "policy" });
      await again.close();
      const r = await new StoreCatalog(store).open(SERVER, "d", s.snapshotId);
      assert.deepEqual(await r.read(0, 3 * BS), Buffer.concat([block(1), Buffer.alloc(BS), block(3)]));
      await r.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a merged segment written but its sources not deleted: the merged one supersedes them", async () => {
    const { store, dir } = await tempStore();
    try {
      const vol = await newVolume(store, "d", 8);
      const snaps: SnapshotManifest[] = [];
      for (let i = 0; i < 3; i++) {
        await put(vol, 0, block(10 + i));
        await put(vol, 1 + i, block(20 + i));
        await vol.flush();
        snaps.push(await vol.snapshot({ barrierId: i + 1, reason: "policy" }));
      }
      const before = await store.list(`${vol.prefix}seg/`);
      const saved = await Promise.all(
        before.map(async (o) => ({ key: o.key, body: await store.get(o.key) })),
      );
      const report = await collectGarbage(vol, [snaps[2]!], snaps.slice(0, 2), {
        smallSegmentBytes: 1 << 30,
      });
      assert.equal(report.mergedSegments.length, 1, JSON.stringify(report));
      await vol.close();
      for (const o of saved)
        if (report.mergedSegments[0]!.from.includes(o.key)) await store.put(o.key, o.body);
      const again = await StagingVolume.open(store, SERVER, "d");
      assert.deepEqual(
        (await store.list(`${vol.prefix}seg/`)).map((o) => o.key),
        [report.mergedSegments[0]!.key],
        "the sources were deleted at open",
      );
      const want = Buffer.concat([block(12), block(20), block(21), block(22)]);
      assert.deepEqual(await again.readRange(0, 4 * BS), want);
      await again.close();
      const r = await new StoreCatalog(store).open(SERVER, "d", snaps[2]!.snapshotId);
      assert.deepEqual(await r.read(0, 4 * BS), want);
      await r.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** One step of the property test. */
type Op =
  | { op: "write"; block: number; seed: number }
  | { op: "zero"; block: number; count: number }
  | { op: "snapshot" }
  | { op: "expire"; pick: number }
  | { op: "reopen" };

test("property: random writes, snapshots, expiries and GC — every retained snapshot reads back as the model says", async () => {
  const BLOCKS = 12;
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ op: fc.constant("write" as const), block: fc.nat(BLOCKS - 1), seed: fc.nat(5) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("zero" as const),
        block: fc.nat(BLOCKS - 1),
        count: fc.integer({ min: 1, max: 3 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("snapshot" as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("expire" as const), pick: fc.nat(20) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("reopen" as const) }) },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      const { store, dir } = await tempStore();
      let vol = await newVolume(store, "p", BLOCKS);
      try {
        const head: (number | null)[] = new Array<number | null>(BLOCKS).fill(null);
        const kept: { m: SnapshotManifest; image: (number | null)[] }[] = [];
        const check = async () => {
          const catalog = new StoreCatalog(store);
          for (const k of kept) {
            const r = await catalog.open(SERVER, "p", k.m.snapshotId);
            const got = await r.read(0, BLOCKS * BS);
            await r.close();
            const want = Buffer.concat(k.image.map((s) => (s === null ? Buffer.alloc(BS) : block(s))));
            assert.ok(got.equals(want), `snapshot ${k.m.snapshotId} reads back as the model`);
          }
          const want = Buffer.concat(head.map((s) => (s === null ? Buffer.alloc(BS) : block(s))));
          assert.ok((await vol.readRange(0, BLOCKS * BS)).equals(want), "the head reads back as the model");
        };
        let barrier = 0;
        for (const o of ops) {
          if (o.op === "write") {
            await put(vol, o.block, block(o.seed));
            head[o.block] = o.seed;
          } else if (o.op === "zero") {
            const n = Math.min(o.count, BLOCKS - o.block);
            await vol.writeZero(o.block * BS, n * BS);
            for (let i = 0; i < n; i++) head[o.block + i] = null;
          } else if (o.op === "snapshot") {
            await vol.flush();
            kept.push({
              m: await vol.snapshot({ barrierId: ++barrier, reason: "policy" }),
              image: [...head],
            });
          } else if (o.op === "expire") {
            const gone = kept.length > 0 ? kept.splice(o.pick % kept.length, 1) : [];
            await vol.flush();
            await collectGarbage(
              vol,
              kept.map((k) => k.m),
              gone.map((k) => k.m),
              { smallSegmentBytes: 1 << 30 },
            );
            await check();
          } else {
            await vol.flush();
            await vol.close();
            vol = await StagingVolume.open(store, SERVER, "p");
          }
        }
        await vol.flush();
        await check();
        assert.deepEqual(
          (await listManifests(store, vol.prefix)).map((m) => m.snapshotId).sort(),
          kept.map((k) => k.m.snapshotId).sort(),
        );
        await vol.close();
        vol = await StagingVolume.open(store, SERVER, "p");
        await check();
      } finally {
        await vol.close();
        await rm(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 60 },
  );
});
