import assert from "node:assert/strict";
import { test } from "node:test";
import { pendingShare } from "./pending-budget.ts";

const MiB = 1024 * 1024;
const budget = { budgetBytes: 256 * MiB, floorBytes: 8 * MiB, capBytes: 64 * MiB };

test("a session alone gets its own limit, not the whole budget", () => {
  assert.equal(pendingShare(budget, 1), 64 * MiB);
  assert.equal(pendingShare(budget, 0), 64 * MiB);
});

test("many sessions share the budget equally", () => {
  assert.equal(pendingShare(budget, 8), 32 * MiB);
  assert.equal(pendingShare(budget, 32), 8 * MiB);
  // What they may hold together stays within the budget down to the floor.
  for (const n of [1, 2, 3, 5, 7, 16, 32])
    assert.ok(pendingShare(budget, n) * n <= Math.max(256 * MiB, 64 * MiB));
});

test("no session gets less than the floor", () => {
  assert.equal(pendingShare(budget, 100), 8 * MiB);
  assert.equal(pendingShare(budget, 10_000), 8 * MiB);
});
