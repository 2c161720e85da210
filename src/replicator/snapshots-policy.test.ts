import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FerryError } from "../lib/errors.ts";
import {
  DEFAULT_PIT_POLICY,
  dueRules,
  expiredSnapshots,
  loadPitPolicy,
  type PolicySnapshot,
} from "./snapshots-policy.ts";

const T0 = Date.parse("2026-03-01T00:00:00Z");
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

/** Runs the default policy with a consistency point every `step` minutes for `total` minutes. */
function simulate(step: number, total: number): { kept: PolicySnapshot[]; taken: number } {
  let kept: PolicySnapshot[] = [];
  let taken = 0;
  for (let m = 0; m <= total; m += step) {
    const now = at(m);
    const due = dueRules(DEFAULT_PIT_POLICY, kept, now);
    if (due.length > 0) {
      kept.push({
        snapshotId: `s${m}`,
        createdAt: now.toISOString(),
        ruleIds: due.map((r) => String(r.ruleID)),
      });
      taken++;
    }
    const gone = expiredSnapshots(DEFAULT_PIT_POLICY, kept, now);
    kept = kept.filter((s) => !gone.includes(s));
  }
  return { kept, taken };
}

test("the default policy: every 10 minutes kept an hour, hourly kept a day, daily kept a week", () => {
  const { kept, taken } = simulate(1, 10 * 24 * 60);
  assert.equal(taken, 10 * 24 * 6 + 1, "one snapshot every 10 minutes");
  const ages = kept.map((s) => (at(10 * 24 * 60).getTime() - Date.parse(s.createdAt)) / 60_000);
  const recent = ages.filter((a) => a <= 60).length;
  const hourly = ages.filter((a) => a > 60 && a <= 24 * 60).length;
  const daily = ages.filter((a) => a > 24 * 60).length;
  assert.equal(recent, 7, "the last hour at 10-minute steps (both ends)");
  assert.equal(hourly, 23, "hourly for a day");
  assert.ok(daily >= 6 && daily <= 7, `daily for a week (${daily})`);
  assert.ok(
    ages.every((a) => a <= 7 * 24 * 60),
    "nothing older than a week",
  );
});

test("a snapshot is due only when its rule's interval has passed; disabled rules never", () => {
  const policy = [
    { ruleID: 1, units: "MINUTE" as const, interval: 10, retentionDuration: 60, enabled: true },
    { ruleID: 2, units: "HOUR" as const, interval: 1, retentionDuration: 24, enabled: false },
  ];
  const snaps = [{ snapshotId: "a", createdAt: at(0).toISOString(), ruleIds: ["1"] }];
  assert.deepEqual(dueRules(policy, snaps, at(5)), []);
  assert.deepEqual(
    dueRules(policy, snaps, at(10)).map((r) => r.ruleID),
    [1],
  );
});

test("expiry keeps the newest snapshot and requested ones for the longest retention", () => {
  const snaps: PolicySnapshot[] = [
    { snapshotId: "old-policy", createdAt: at(0).toISOString(), ruleIds: ["1"] },
    { snapshotId: "requested", createdAt: at(0).toISOString(), ruleIds: [] },
    { snapshotId: "newest", createdAt: at(1).toISOString(), ruleIds: ["1"] },
  ];
  assert.deepEqual(
    expiredSnapshots(DEFAULT_PIT_POLICY, snaps, at(24 * 60)).map((s) => s.snapshotId),
    ["old-policy"],
  );
  assert.deepEqual(
    expiredSnapshots(DEFAULT_PIT_POLICY, snaps, at(8 * 24 * 60)).map((s) => s.snapshotId),
    ["old-policy", "requested"],
  );
});

test("a policy file is validated (DRS shape, or DRS's {pitPolicy: [...]})", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-pit-"));
  try {
    const good = join(dir, "good.json");
    await writeFile(
      good,
      JSON.stringify({ pitPolicy: [{ ruleID: 1, units: "HOUR", interval: 2, retentionDuration: 12 }] }),
    );
    assert.deepEqual(await loadPitPolicy(good), [
      { ruleID: 1, units: "HOUR", interval: 2, retentionDuration: 12, enabled: true },
    ]);
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify([{ ruleID: 1, units: "WEEK", interval: 1, retentionDuration: 1 }]));
    await assert.rejects(
      loadPitPolicy(bad),
      (e) => e instanceof FerryError && e.code === "INVALID_PIT_POLICY" && /units/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
