import { test } from "node:test";
import assert from "node:assert/strict";
import { RateMeter } from "./rate.ts";

test("the rate is the average over the window and forgets what is older", () => {
  let now = 1_000_000;
  const meter = new RateMeter(10, () => now);
  meter.add(1000);
  assert.equal(meter.perSecond(), 1000);
  for (let s = 1; s < 10; s++) {
    now += 1000;
    meter.add(1000);
  }
  assert.equal(meter.perSecond(), 1000);
  now += 5000;
  assert.equal(meter.perSecond(), 500);
  now += 60_000;
  assert.equal(meter.perSecond(), 0);
});
