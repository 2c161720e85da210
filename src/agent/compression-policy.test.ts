import { test } from "node:test";
import assert from "node:assert/strict";
import { CompressionPolicy } from "./compression-policy.ts";

const MiB = 1024 * 1024;

/**
 * Drives a policy through a simulated link: every 10 ms of fake time a chunk
 * goes out, carrying as many bytes as the chosen mode moves per 10 ms.
 * Returns the sequence of choices, one per chunk.
 */
function simulate(
  policy: CompressionPolicy,
  clock: { t: number },
  rateWith: (compressed: boolean, t: number) => number,
  ms: number,
): boolean[] {
  const choices: boolean[] = [];
  for (const end = clock.t + ms; clock.t < end; clock.t += 10) {
    const c = policy.shouldCompress();
    choices.push(c);
    policy.record((rateWith(c, clock.t) * 10) / 1000, c);
  }
  return choices;
}

function share(choices: boolean[]): number {
  return choices.filter(Boolean).length / choices.length;
}

test("on a fast link (compressing is the bottleneck) auto settles on raw, probing now and then", () => {
  const clock = { t: 0 };
  const p = new CompressionPolicy({ mode: "auto", now: () => clock.t });
  const choices = simulate(p, clock, (c) => (c ? 150 * MiB : 600 * MiB), 60_000);
  const later = choices.slice(choices.length / 4);
  assert.ok(share(later) > 0.03 && share(later) < 0.15, `compressed share ${share(later)}`);
  assert.ok(p.stats.rawRate > p.stats.compressedRate);
  assert.ok(p.stats.compressedWindows >= 4, "the other choice is probed again");
});

test("on a slow link (compression multiplies what it carries) auto settles on zstd", () => {
  const clock = { t: 0 };
  const p = new CompressionPolicy({ mode: "auto", now: () => clock.t });
  const choices = simulate(p, clock, (c) => (c ? 40 * MiB : 12 * MiB), 60_000);
  assert.ok(share(choices.slice(choices.length / 4)) > 0.85);
});

test("auto follows a change: the link gets faster mid-sync", () => {
  const clock = { t: 0 };
  const p = new CompressionPolicy({ mode: "auto", now: () => clock.t });
  const rate = (c: boolean, t: number) => (t < 30_000 ? (c ? 40 : 12) : c ? 150 : 600) * MiB;
  const choices = simulate(p, clock, rate, 90_000);
  const third = choices.length / 3;
  assert.ok(share(choices.slice(third / 2, third)) > 0.85);
  assert.ok(share(choices.slice(2 * third)) < 0.15);
});

test("when both choices move about the same (noisy, CPU-bound), auto mostly sends raw", () => {
  const clock = { t: 0 };
  const p = new CompressionPolicy({ mode: "auto", now: () => clock.t });
  let x = 12345;
  const noise = () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return 0.8 + (0.4 * x) / 2 ** 31;
  };
  const choices = simulate(p, clock, () => 200 * MiB * noise(), 120_000);
  assert.ok(share(choices.slice(choices.length / 4)) < 0.3, `compressed share ${share(choices)}`);
});

test("zstd and none are fixed choices", () => {
  const clock = { t: 0 };
  for (const [mode, want] of [
    ["zstd", true],
    ["none", false],
  ] as const) {
    const p = new CompressionPolicy({ mode, now: () => clock.t });
    const choices = simulate(p, clock, (c) => (c ? 1 : 1000) * MiB, 20_000);
    assert.ok(
      choices.every((c) => c === want),
      mode,
    );
  }
});

test("a window with too little data (a zero region) is extended, not judged", () => {
  const clock = { t: 0 };
  const p = new CompressionPolicy({ mode: "auto", now: () => clock.t });
  simulate(p, clock, () => 0, 5_000);
  assert.equal(p.stats.compressedWindows, 0);
  assert.ok(p.shouldCompress(), "still measuring the first choice");
});
