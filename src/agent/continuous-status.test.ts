import { test } from "node:test";
import assert from "node:assert/strict";
import { ConvergenceMeter, notConvergingMessage } from "./continuous-status.ts";

const MB = 1e6;

/** Drives a meter with a fake clock: `step(ms, backlog, sent, writeRate)`. */
function driver(windowMs = 4000) {
  let t = 1_000_000;
  const meter = new ConvergenceMeter({ windowMs, rateWindowMs: 2000, now: () => t });
  return (ms: number, backlogBytes: number, sentBytes: number, writeBytesPerSecond: number) => {
    t += ms;
    return meter.update({ backlogBytes, sentBytes, writeBytesPerSecond });
  };
}

test("a backlog that does not shrink for the window while the source writes: NOT_CONVERGING with both rates", () => {
  const step = driver();
  let sent = 0;
  let v;
  // Saw-tooth between 6 and 8 MB (drain, send, refill): never empty, never lower.
  for (let i = 0; i < 60; i++) {
    sent += 0.1 * MB; // 1 MB/s at 100 ms steps
    v = step(100, i % 2 ? 8 * MB : 6 * MB, sent, 4 * MB);
    if (i < 39) assert.equal(v.notConverging, undefined, `not before the window is over (step ${i})`);
  }
  assert.ok(v!.notConverging, "reported once the window is over");
  assert.equal(v!.notConverging.writeBytesPerSecond, 4 * MB);
  assert.ok(Math.abs(v!.notConverging.sendBytesPerSecond - 1 * MB) < 0.05 * MB);
  assert.ok(v!.lagMs >= 5900);
  const msg = notConvergingMessage(v!.notConverging);
  assert.match(msg, /writes 4\.0 MB\/s but only 1\.0 MB\/s reach the replicator/);
  assert.match(msg, /bandwidthThrottling/);
});

test("a backlog that shrinks only a little (< 10% a window) does not converge either", () => {
  const step = driver();
  let v;
  for (let i = 0; i < 60; i++) v = step(100, (100 - i * 0.1) * MB, i * 0.1 * MB, 4 * MB);
  assert.ok(v!.notConverging);
});

test("a large backlog that is shrinking is not NOT_CONVERGING; nor is one the source stopped adding to", () => {
  const step = driver();
  let v;
  for (let i = 0; i < 80; i++) {
    v = step(100, (100 - i) * MB, i * MB, 2 * MB); // 40% less over a 4 s window
    assert.equal(v.notConverging, undefined, `shrinking at step ${i}`);
  }
  const idle = driver();
  for (let i = 0; i < 80; i++) v = idle(100, 5 * MB, 0, 0);
  assert.equal(v!.notConverging, undefined, "no writes: a stalled link, not a source outrunning it");
});

test("recovers: once writes stop and the backlog drains, the error clears and lag is 0", () => {
  const step = driver();
  let v;
  for (let i = 0; i < 60; i++) v = step(100, 8 * MB, i * 0.1 * MB, 4 * MB);
  assert.ok(v!.notConverging);
  // Writes stop: the backlog comes down, then empties.
  for (let i = 0; i < 8; i++) {
    v = step(100, (8 - i) * MB, 0, 0);
    assert.equal(v.notConverging, undefined, "no writes any more");
  }
  v = step(100, 0, 0, 0);
  assert.equal(v.notConverging, undefined);
  assert.equal(v.lagMs, 0);
  // Writes again, but now the backlog empties between drains: converging.
  for (let i = 0; i < 80; i++) v = step(100, i % 2 ? 1 * MB : 0, 0, 4 * MB);
  assert.equal(v!.notConverging, undefined);
});
