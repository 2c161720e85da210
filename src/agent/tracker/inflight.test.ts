import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InflightRequests } from "./inflight.ts";
import type { DirtyExtent } from "./types.ts";

const covers = (extents: DirtyExtent[], offset: number, length: number) =>
  extents.some((x) => x.offset <= offset && x.offset + x.length >= offset + length);

test("an issued request stays open until its completion is seen, in either order", () => {
  const set = new InflightRequests();
  set.issued(10, 2048, 8);
  assert.deepEqual(set.openExtents(0), { extents: [{ offset: 2048 * 512, length: 4096 }], bytes: 4096 });
  set.completed(20, 2048, 8);
  assert.deepEqual(set.openExtents(0), { extents: [], bytes: 0 });
  // The completion printed before the issue (another CPU's buffer read first).
  set.completed(31, 4096, 16);
  assert.equal(set.openExtents(0)!.bytes, 0, "a completion alone opens nothing");
  set.issued(30, 4096, 16);
  assert.equal(set.size, 0);
  // A partition's start is subtracted.
  set.issued(40, 1000, 8);
  assert.deepEqual(set.openExtents(1000)!.extents, [{ offset: 0, length: 4096 }]);
});

test("two requests for the same sectors: one completion leaves one open", () => {
  const set = new InflightRequests();
  set.issued(1, 64, 8);
  set.issued(2, 64, 8);
  set.completed(3, 64, 8);
  assert.equal(set.openExtents(0)!.bytes, 4096);
});

test("settleBefore: entries touched before the instant are dropped, the open ones returned", () => {
  const set = new InflightRequests();
  set.issued(10, 8, 8); // completion never seen
  set.completed(11, 800, 8); // completion without an issue (a partial completion)
  set.issued(50, 16, 8); // issued after the instant: may still be in flight
  const out = set.settleBefore(20, 0);
  assert.deepEqual(out, [{ offset: 8 * 512, length: 4096 }]);
  assert.equal(set.size, 1);
  assert.deepEqual(set.openExtents(0)!.extents, [{ offset: 16 * 512, length: 4096 }]);
});

test("requests settled as open still account for a miss found later, for 10 s", () => {
  const set = new InflightRequests();
  set.issued(10, 8, 8);
  assert.equal(set.settleBefore(20, 0).length, 1);
  assert.deepEqual(set.openExtents(0, 30), { extents: [], bytes: 4096 });
  assert.deepEqual(set.openExtents(0, 20 + 10e9 + 1), { extents: [], bytes: 0 });
});

test("past its limit the set no longer vouches for a miss", () => {
  const set = new InflightRequests(4);
  for (let i = 0; i < 5; i++) set.issued(i, i * 8, 8);
  assert.equal(set.openExtents(0), undefined);
  set.clear();
  assert.deepEqual(set.openExtents(0), { extents: [], bytes: 0 });
});

test("property: every request whose completion was not seen is open or returned by a settle", () => {
  const request = fc.record({
    sector: fc.integer({ min: 0, max: 64 }).map((n) => n * 8),
    sectors: fc.constantFrom(8, 16, 256),
    dropped: fc.boolean(),
    completionFirst: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(request, { maxLength: 60 }), fc.integer({ min: 0, max: 60 }), (reqs, settleAt) => {
      const set = new InflightRequests();
      const returned: DirtyExtent[] = [];
      reqs.forEach((r, i) => {
        const t = i * 10;
        if (i === settleAt) returned.push(...set.settleBefore(t, 0));
        if (r.dropped) set.issued(t, r.sector, r.sectors);
        else if (r.completionFirst) {
          set.completed(t + 1, r.sector, r.sectors);
          set.issued(t, r.sector, r.sectors);
        } else {
          set.issued(t, r.sector, r.sectors);
          set.completed(t + 1, r.sector, r.sectors);
        }
      });
      const open = set.openExtents(0)!.extents;
      const missedBytes = reqs.filter((r) => r.dropped).reduce((n, r) => n + r.sectors * 512, 0);
      assert.ok(set.openExtents(0)!.bytes <= missedBytes, "nothing completed stays open");
      for (const r of reqs.filter((x) => x.dropped)) {
        const [offset, length] = [r.sector * 512, r.sectors * 512];
        assert.ok(
          covers(open, offset, length) || covers(returned, offset, length),
          `${r.sector}+${r.sectors}`,
        );
      }
    }),
  );
});
