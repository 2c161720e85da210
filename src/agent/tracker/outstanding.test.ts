import { test } from "node:test";
import assert from "node:assert/strict";
import { OutstandingRequests } from "./outstanding.ts";

const S = 1_000_000_000n; // 1 s in ns
const T = 100n * S;

test("an open request issued long enough ago that accounts exactly for the missed sectors is matched, once", () => {
  const o = new OutstandingRequests();
  o.issued(2048, 8, T, false);
  o.issued(4096, 16, T, false);
  o.completed(4096, 16); // seen completing: not a suspect
  o.issued(9000, 2048, T, true);
  o.completed(9000, 1024); // partial completion: the rest stays open
  assert.deepEqual(o.match({ writeSectors: 8, discardSectors: 1024 }, T + S), [
    { sector: 2048, sectors: 8 },
    { sector: 10024, sectors: 1024 },
  ]);
  assert.equal(
    o.match({ writeSectors: 8, discardSectors: 1024 }, T + S),
    undefined,
    "matched requests are gone",
  );
});

test("no match unless exact: too few or too many open sectors, too recent, or after entries were dropped", () => {
  const o = new OutstandingRequests(4);
  o.issued(100, 8, T, false);
  assert.equal(o.match({ writeSectors: 16, discardSectors: 0 }, T + S), undefined, "fewer open than missed");
  o.issued(200, 8, T, false);
  assert.equal(o.match({ writeSectors: 8, discardSectors: 0 }, T + S), undefined, "more open than missed");
  assert.equal(
    o.match({ writeSectors: 16, discardSectors: 0 }, T),
    undefined,
    "issued too recently to be late",
  );
  assert.equal(o.match({ writeSectors: 16, discardSectors: 8 }, T + S), undefined, "discards must match too");
  for (let i = 0; i < 5; i++) o.issued(1000 + i * 8, 8, T, false); // over the bound: dropped
  assert.equal(o.match({ writeSectors: 8, discardSectors: 0 }, T + S), undefined, "incomplete after a drop");
  o.clear();
  o.issued(300, 8, T, false);
  assert.deepEqual(o.match({ writeSectors: 8, discardSectors: 0 }, T + S), [{ sector: 300, sectors: 8 }]);
});

test("requests older than 30 s are forgotten", () => {
  const o = new OutstandingRequests();
  o.issued(100, 8, T, false);
  assert.equal(o.match({ writeSectors: 8, discardSectors: 0 }, T + 31n * S), undefined);
});
