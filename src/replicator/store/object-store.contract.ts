/**
 * The contract every staging-store backend meets, run by one test file per
 * backend (local-directory-store.test.ts, s3-store.test.ts).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { FerryError } from "../../lib/errors.ts";
import type { ObjectStore } from "./object-store.ts";

export interface ContractSubject {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

function code(err: unknown): string | undefined {
  return err instanceof FerryError ? err.code : undefined;
}

export function objectStoreContract(name: string, make: () => Promise<ContractSubject>): void {
  describe(`ObjectStore contract: ${name}`, { timeout: 60_000 }, () => {
    let subject: ContractSubject;
    let store: ObjectStore;
    before(async () => {
      subject = await make();
      store = subject.store;
    });
    after(async () => {
      await store.close();
      await subject.cleanup();
    });

    test("put then get returns the same bytes, whole and by range", async () => {
      const body = randomBytes(100_000);
      await store.put("vol/a/seg/000001", body);
      assert.deepEqual(await store.get("vol/a/seg/000001"), body);
      assert.deepEqual(
        await store.get("vol/a/seg/000001", { offset: 777, length: 5000 }),
        body.subarray(777, 5777),
      );
      assert.deepEqual(
        await store.get("vol/a/seg/000001", { offset: 99_990, length: 10 }),
        body.subarray(99_990),
      );
    });

    test("put of several parts stores their concatenation", async () => {
      const parts = [randomBytes(10), Buffer.alloc(0), randomBytes(3000)];
      await store.put("vol/a/parts", parts);
      assert.deepEqual(await store.get("vol/a/parts"), Buffer.concat(parts));
    });

    test("a missing object or a range past its end is OBJECT_NOT_FOUND", async () => {
      await assert.rejects(store.get("vol/none"), (e) => code(e) === "OBJECT_NOT_FOUND");
      await store.put("vol/short", Buffer.from("abc"));
      await assert.rejects(
        store.get("vol/short", { offset: 1, length: 10 }),
        (e) => code(e) === "OBJECT_NOT_FOUND",
      );
    });

    test("list by prefix: sorted, with sizes, nothing outside the prefix", async () => {
      await store.put("lst/x/seg/000002", Buffer.alloc(2));
      await store.put("lst/x/seg/000001", Buffer.alloc(1));
      await store.put("lst/x/segment-not", Buffer.alloc(3));
      await store.put("lst/y/seg/000001", Buffer.alloc(4));
      assert.deepEqual(await store.list("lst/x/seg/"), [
        { key: "lst/x/seg/000001", size: 1 },
        { key: "lst/x/seg/000002", size: 2 },
      ]);
      assert.deepEqual(
        (await store.list("lst/")).map((o) => o.key),
        ["lst/x/seg/000001", "lst/x/seg/000002", "lst/x/segment-not", "lst/y/seg/000001"],
      );
      assert.deepEqual(await store.list("lst/z/"), []);
    });

    test("delete removes an object; deleting a missing one is fine", async () => {
      await store.put("del/one", Buffer.from("1"));
      await store.delete("del/one");
      await store.delete("del/one");
      assert.deepEqual(await store.list("del/"), []);
      await assert.rejects(store.get("del/one"), (e) => code(e) === "OBJECT_NOT_FOUND");
    });

    test("metadata records: absent, put, replaced", async () => {
      assert.equal(await store.getMeta("meta/head.json"), undefined);
      await store.putMeta("meta/head.json", Buffer.from('{"v":1}'));
      await store.putMeta("meta/head.json", Buffer.from('{"v":2}'));
      assert.equal((await store.getMeta("meta/head.json"))?.toString(), '{"v":2}');
    });

    test("keys that could escape the store are refused", async () => {
      for (const bad of ["../x", "a/../../b", "/abs", "a//b", "a/./b", "", "a/b/", ".hidden/x"]) {
        await assert.rejects(store.put(bad, Buffer.alloc(1)), (e) => code(e) === "INVALID_OBJECT_KEY", bad);
        await assert.rejects(store.get(bad), (e) => code(e) === "INVALID_OBJECT_KEY", bad);
      }
    });

    test("a reader (when supported) returns the same bytes as get at any offset, short only past the end", async (t) => {
      if (!store.openReader) {
        t.skip("this backend reads ranges with get");
        return;
      }
      const body = randomBytes(3 * 65536 + 1234);
      await store.put("rd/seg/000001", body);
      const r = await store.openReader("rd/seg/000001");
      try {
        for (const [offset, length] of [
          [0, body.length],
          [1, 100],
          [4095, 4098],
          [65536 + 32, 65536],
          [body.length - 10, 10],
        ] as const) {
          assert.deepEqual(
            await r.read({ offset, length }),
            body.subarray(offset, offset + length),
            `${offset}+${length}`,
          );
        }
        const reads = await Promise.all(
          [0, 1, 2].map((i) => r.read({ offset: i * 65536 + 7, length: 65536 })),
        );
        reads.forEach((got, i) => assert.deepEqual(got, body.subarray(i * 65536 + 7, (i + 1) * 65536 + 7)));
        assert.deepEqual(
          await r.read({ offset: body.length - 4, length: 100 }),
          body.subarray(body.length - 4),
        );
      } finally {
        await r.close();
      }
      await assert.rejects(store.openReader("rd/none"), (e) => code(e) === "OBJECT_NOT_FOUND");
    });

    test("removeVolume removes every object of one volume and nothing else; again removes nothing", async () => {
      await store.put("rv/s-1/vda/seg/000000000001-000000000001", randomBytes(1000));
      await store.put("rv/s-1/vda/seg/000000000002-000000000002", randomBytes(10));
      await store.putMeta("rv/s-1/vda/meta.json", Buffer.from('{"head":1}'));
      await store.putMeta("rv/s-1/vda/snap/snap-1.json", Buffer.from('{"snap":1}'));
      const open = await store.openAppendable?.("rv/s-1/vda/seg/000000000003-000000000003");
      await open?.append([Buffer.from("unsealed")]);
      await open?.sync();
      // Neighbours: another disk, a disk whose name starts the same, another server.
      await store.putMeta("rv/s-1/vdb/meta.json", Buffer.from("{}"));
      await store.put("rv/s-1/vda2/seg/000000000001-000000000001", Buffer.from("keep"));
      await store.putMeta("rv/s-2/vda/meta.json", Buffer.from("{}"));

      const removed = await store.removeVolume("rv/s-1/vda/");
      assert.equal(removed, 4 + (open ? 1 : 0));
      await open?.close();
      assert.deepEqual(await store.list("rv/s-1/vda/"), []);
      assert.equal(await store.getMeta("rv/s-1/vda/meta.json"), undefined);
      assert.equal(await store.getMeta("rv/s-1/vda/snap/snap-1.json"), undefined);
      await assert.rejects(
        store.get("rv/s-1/vda/seg/000000000001-000000000001"),
        (e) => code(e) === "OBJECT_NOT_FOUND",
      );
      if (store.listAppendable) assert.deepEqual(await store.listAppendable("rv/s-1/vda/seg/"), []);
      assert.deepEqual(
        (await store.list("rv/")).map((o) => o.key),
        ["rv/s-1/vda2/seg/000000000001-000000000001", "rv/s-1/vdb/meta.json", "rv/s-2/vda/meta.json"],
      );
      assert.equal(await store.removeVolume("rv/s-1/vda/"), 0);
      assert.equal(await store.removeVolume("rv/s-9/none/"), 0);
    });

    test("removeVolume refuses the whole store, a bare key and keys that could escape", async () => {
      for (const bad of ["", "/", "rv/s-1/vda", "../rv/", "rv/../../x/", ".removing/"]) {
        await assert.rejects(store.removeVolume(bad), (e) => code(e) === "INVALID_OBJECT_KEY", bad);
      }
    });

    test("an appendable object (when supported) is invisible until sealed and reopens at a cut length", async (t) => {
      if (!store.openAppendable) {
        t.skip("this backend buffers segments and puts them whole");
        return;
      }
      const a = await store.openAppendable("app/seg/000001");
      await a.append([Buffer.from("hello "), Buffer.from("world")]);
      await a.sync();
      assert.deepEqual(await store.list("app/"), []);
      assert.deepEqual(await store.listAppendable!("app/seg/"), ["app/seg/000001"]);
      await a.close();
      const b = await store.openAppendable("app/seg/000001", { truncateTo: 5 });
      assert.equal(b.size, 5);
      await b.append([Buffer.from("!")]);
      assert.equal((await b.read({ offset: 0, length: 6 })).toString(), "hello!");
      await b.seal();
      await b.close();
      assert.equal((await store.get("app/seg/000001")).toString(), "hello!");
      assert.deepEqual(await store.listAppendable!("app/seg/"), []);
    });
  });
}
