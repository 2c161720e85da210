import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../lib/errors.ts";
import { blockHashes } from "../wire/index.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../../test/support/s3rver.ts";
import { StoreCatalog } from "./snapshots.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { S3Store } from "./store/s3-store.ts";
import { StagingVolume } from "./volume.ts";
import { leaseKey, readReleaseMarker, releaseMarkerKey } from "./volume-lease.ts";
import {
  createStagingReleaser,
  pendingReleases,
  reinstateServer,
  releaseServerVolumes,
} from "./volume-release.ts";

const BS = 4096;
const A = "s-releasetest000000a";
const B = "s-releasetest000000b";

function code(err: unknown): string | undefined {
  return err instanceof FerryError ? err.code : undefined;
}

async function filledVolume(
  store: ObjectStore,
  server: string,
  disk: string,
  o: { leaseTtlMs?: number } = {},
) {
  const vol = await StagingVolume.open(store, server, disk, o);
  await vol.startGeneration({
    generationId: "cd".repeat(16),
    diskSize: 16 * BS,
    logicalBlockSize: 512,
    hashBlockSize: BS,
  });
  const data = Buffer.alloc(4 * BS, disk.length + 1);
  await vol.writeData(0, data, blockHashes(data, BS));
  await vol.flush({ durableSeq: 1 });
  await vol.snapshot({ barrierId: 1, reason: "requested" });
  await vol.writeData(8 * BS, data, blockHashes(data, BS));
  await vol.flush({ durableSeq: 2 });
  return vol;
}

async function localStore() {
  const dir = await mkdtemp(join(tmpdir(), "ferry-release-"));
  return {
    store: new LocalDirectoryStore(dir),
    dir,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

for (const backend of ["local", "s3"] as const) {
  test(`a release removes every volume of one server and nothing else, and again is a no-op (${backend})`, async () => {
    let store: ObjectStore;
    let cleanup: () => Promise<unknown>;
    if (backend === "local") ({ store, cleanup } = await localStore());
    else {
      const s3 = await startS3rver("ferry-release");
      store = new S3Store({
        bucket: "ferry-release",
        prefix: "rep",
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
      });
      cleanup = () => s3.close();
    }
    try {
      for (const [server, disk] of [
        [A, "vda"],
        [A, "vdb"],
        [B, "vda"],
      ] as const) {
        await (await filledVolume(store, server, disk)).close();
      }
      const catalog = new StoreCatalog(store);
      assert.equal((await catalog.list(A)).length, 2);
      const before = await store.list(`volumes/${B}/`);

      const r = await releaseServerVolumes(store, A, { reason: "FinalizeCutover" });
      assert.deepEqual(r.disks, ["vda", "vdb"]);
      assert.ok(r.removedObjects >= 6, `removed ${r.removedObjects}`);
      assert.deepEqual(
        (await store.list(`volumes/${A}/`)).map((o) => o.key),
        [releaseMarkerKey(A)],
        "only the completed marker is left",
      );
      assert.deepEqual(await catalog.list(A), []);
      assert.deepEqual(await store.list(`volumes/${B}/`), before, "another server's volume is untouched");
      const marker = await readReleaseMarker(store, A);
      assert.equal(marker?.reason, "FinalizeCutover");
      assert.ok(marker?.completedAt);

      const again = await releaseServerVolumes(store, A);
      assert.equal(again.removedObjects, 0);
      assert.deepEqual(await pendingReleases(store), []);
      // The released server's agent cannot write it again (within the hold).
      await assert.rejects(StagingVolume.open(store, A, "vda"), (e) => code(e) === "VOLUME_RELEASED");
      assert.deepEqual((await store.list(`volumes/${A}/`)).length, 1);
    } finally {
      await store.close();
      await cleanup();
    }
  });
}

describe("a release never removes a volume a live writer holds", () => {
  test("a writing volume defers the release; its next write stops; then the release completes", async () => {
    const { store, cleanup } = await localStore();
    try {
      const vol = await filledVolume(store, A, "vda", { leaseTtlMs: 1000 });
      // The writer renewed just now: a short release attempt sees a live lease and gives up, removing nothing.
      const keep = (await store.list(`volumes/${A}/vda/`)).map((o) => o.key);
      const writer = (async () => {
        const data = Buffer.alloc(BS, 7);
        for (let i = 0; i < 200; i++) {
          await vol.writeData((i % 16) * BS, data, blockHashes(data, BS));
          await vol.flush({ durableSeq: 3 + i });
          await sleep(20);
        }
      })();
      writer.catch(() => {}); // awaited below
      await assert.rejects(
        releaseServerVolumes(store, A, { ttlMs: 1000, maxWaitMs: 150, pollMs: 20 }),
        (e) => code(e) === "VOLUME_IN_USE",
      );
      for (const key of keep) {
        if (!key.endsWith("lease.json")) assert.ok((await store.getMeta(key)) !== undefined, key);
      }
      // The writer finds the marker at its next renewal (within ttl/2) and stops.
      await assert.rejects(writer, (e) => code(e) === "VOLUME_RELEASED");
      assert.equal(await store.getMeta(leaseKey(`volumes/${A}/vda/`)), undefined, "it gave its lease up");
      const r = await releaseServerVolumes(store, A, { ttlMs: 1000, pollMs: 20 });
      assert.ok(r.removedObjects > 0);
      assert.deepEqual(await store.list(`volumes/${A}/vda/`), []);
      await vol.close();
      assert.deepEqual(
        await store.list(`volumes/${A}/vda/`),
        [],
        "closing the stopped writer writes nothing",
      );
    } finally {
      await cleanup();
    }
  });

  test("an idle writer's volume is removed once its lease is unchanged for a ttl; the writer then refuses", async () => {
    const { store, cleanup } = await localStore();
    try {
      const vol = await filledVolume(store, A, "vda", { leaseTtlMs: 400 });
      const t0 = performance.now();
      await releaseServerVolumes(store, A, { ttlMs: 400, pollMs: 20 });
      assert.ok(performance.now() - t0 >= 400, "it waited a whole ttl");
      assert.deepEqual(await store.list(`volumes/${A}/vda/`), []);
      const data = Buffer.alloc(BS, 9);
      await assert.rejects(
        vol.writeData(0, data, blockHashes(data, BS)),
        (e) => code(e) === "VOLUME_RELEASED",
      );
      await assert.rejects(vol.flush({ durableSeq: 9 }), (e) => code(e) === "VOLUME_RELEASED");
      await vol.close();
      assert.deepEqual(await store.list(`volumes/${A}/vda/`), []);
    } finally {
      await cleanup();
    }
  });

  test("a released server registered again may replicate at once; a release in progress stays", async () => {
    const { store, cleanup } = await localStore();
    try {
      await (await filledVolume(store, A, "vda")).close();
      assert.equal(await reinstateServer(store, A), "not-released");
      await releaseServerVolumes(store, A);
      await assert.rejects(filledVolume(store, A, "vda"), (e) => code(e) === "VOLUME_RELEASED");
      assert.equal(await reinstateServer(store, A), "reinstated");
      assert.equal(await readReleaseMarker(store, A), undefined);
      await (await filledVolume(store, A, "vda")).close();
      // A release still waiting for its writer keeps its marker: the writer must still stop.
      const writer = await filledVolume(store, A, "vda");
      const releasing = releaseServerVolumes(store, A, { ttlMs: 1000, pollMs: 50 });
      for (let i = 0; i < 100 && !(await readReleaseMarker(store, A)); i++) await sleep(10);
      assert.equal(await reinstateServer(store, A), "release-in-progress");
      assert.ok(await readReleaseMarker(store, A));
      await writer.close();
      await releasing;
    } finally {
      await cleanup();
    }
  });

  test("registered again while this host's release waits for its writer: the hold is lifted when that release completes", async () => {
    const { store, cleanup } = await localStore();
    const releaser = createStagingReleaser({ store, ttlMs: 1000, pollMs: 20, reinstateWaitMs: 100 });
    try {
      const writer = await filledVolume(store, A, "vda");
      const releasing = releaser.release(A);
      for (let i = 0; i < 100 && !(await readReleaseMarker(store, A)); i++) await sleep(10);
      // The writer still holds its lease: the registration's wait runs out, the hold stays for now.
      await releaser.reinstate(A);
      assert.ok(await readReleaseMarker(store, A), "the release is still in progress");
      await writer.close();
      await releasing;
      assert.equal(await readReleaseMarker(store, A), undefined, "lifted as the release completed");
      await (await filledVolume(store, A, "vda")).close();

      // Within the wait: the registration returns with the hold already gone.
      const second = await filledVolume(store, A, "vda");
      const again = releaser.release(A);
      for (let i = 0; i < 100 && !(await readReleaseMarker(store, A)); i++) await sleep(10);
      const slow = createStagingReleaser({ store, ttlMs: 1000, pollMs: 20, reinstateWaitMs: 5000 });
      await slow.reinstate(A); // another host's releaser: nothing of its own to wait for
      assert.ok(await readReleaseMarker(store, A));
      await slow.close();
      const reinstating = releaser.reinstate(A);
      await sleep(50);
      await second.close();
      await reinstating;
      assert.equal(await readReleaseMarker(store, A), undefined);
      await again;

      // A later release is not lifted by a registration that came before it.
      await (await filledVolume(store, A, "vda")).close();
      await releaser.release(A);
      assert.ok((await readReleaseMarker(store, A))?.completedAt, "its hold applies");
    } finally {
      await releaser.close();
      await cleanup();
    }
  });

  test("after the hold a server may replicate again (the marker goes)", async () => {
    const { store, cleanup } = await localStore();
    try {
      await (await filledVolume(store, A, "vda")).close();
      await releaseServerVolumes(store, A, { holdMs: 0 });
      const vol = await filledVolume(store, A, "vda");
      await vol.close();
      assert.equal(await readReleaseMarker(store, A), undefined);
      assert.equal((await new StoreCatalog(store).list(A)).length, 1);
    } finally {
      await cleanup();
    }
  });
});

test("a release interrupted after its marker is finished by the next start; local leftovers of a crash go too", async () => {
  const { store, dir, cleanup } = await localStore();
  try {
    await (await filledVolume(store, A, "vda")).close();
    await (await filledVolume(store, B, "vda")).close();
    // A crash right after the marker was written.
    await store.putMeta(
      releaseMarkerKey(A),
      Buffer.from(
        JSON.stringify({
          sourceServerId: A,
          requestedAt: new Date().toISOString(),
          reason: "DisconnectFromService",
          holdMs: 3600_000,
        }),
      ),
    );
    assert.deepEqual(await pendingReleases(store), [A]);
    const releaser = createStagingReleaser({ store, retryMs: 50, pollMs: 20 });
    assert.deepEqual(await releaser.resumePending(), [A]);
    for (let i = 0; i < 100 && (await pendingReleases(store)).length; i++) await sleep(20);
    await releaser.close();
    assert.deepEqual(await pendingReleases(store), []);
    assert.deepEqual(await store.list(`volumes/${A}/vda/`), []);
    assert.ok((await store.list(`volumes/${B}/vda/`)).length > 0);
    assert.deepEqual(await readdir(join(dir, ".removing")), [], "nothing left aside");
  } finally {
    await cleanup();
  }
});
