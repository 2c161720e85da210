import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CounterReconciler } from "./reconcile.ts";

const MS = 1e6;

test("no miss when the counters equal what was traced; a miss when they exceed it", () => {
  const r = new CounterReconciler(2 * MS);
  r.record(1 * MS, 8, false);
  assert.equal(r.check({ tA: 10 * MS, tB: 11 * MS, writeSectors: 108, discardSectors: 0 }), undefined);
  assert.ok(r.armed);
  r.record(20 * MS, 16, false);
  r.record(21 * MS, 2048, true);
  assert.equal(r.check({ tA: 30 * MS, tB: 31 * MS, writeSectors: 124, discardSectors: 2048 }), undefined);
  // The kernel counted 8 sectors more than were traced.
  r.record(40 * MS, 8, false);
  assert.deepEqual(r.check({ tA: 50 * MS, tB: 51 * MS, writeSectors: 140, discardSectors: 2048 }), {
    writeSectors: 8,
    discardSectors: 0,
  });
});

test("completions near the read are given the benefit of the doubt, and no base is taken then", () => {
  const r = new CounterReconciler(2 * MS);
  r.record(9.5 * MS, 8, false); // within the margin of the read: counted or not
  assert.equal(r.check({ tA: 10 * MS, tB: 11 * MS, writeSectors: 8, discardSectors: 0 }), undefined);
  assert.equal(r.armed, false);
  assert.equal(r.check({ tA: 20 * MS, tB: 21 * MS, writeSectors: 8, discardSectors: 0 }), undefined);
  assert.ok(r.armed);
  r.record(29.9 * MS, 8, false);
  assert.equal(r.check({ tA: 30 * MS, tB: 31 * MS, writeSectors: 8, discardSectors: 0 }), undefined);
  assert.equal(r.check({ tA: 40 * MS, tB: 41 * MS, writeSectors: 16, discardSectors: 0 }), undefined);
  assert.deepEqual(r.check({ tA: 50 * MS, tB: 51 * MS, writeSectors: 24, discardSectors: 0 }), {
    writeSectors: 8,
    discardSectors: 0,
  });
});

test("property: with every completion traced there is never a miss; drop one and it is found", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 256 }), fc.boolean()), {
        minLength: 2,
        maxLength: 200,
      }),
      fc.nat(),
      (gaps, dropAt) => {
        // Completions at increasing times (µs apart); the kernel counts each 0.1 ms after tracing it.
        let t = 0;
        const completions = gaps.map(([dt, sectors, discard]) => ({ t: (t += dt * 1000), sectors, discard }));
        const drop = dropAt % completions.length;
        for (const lose of [false, true]) {
          const r = new CounterReconciler(2 * MS);
          let next = 0;
          let found = false;
          let armedAt: number | undefined;
          // Read the counters every 3 ms, well after the last completion too.
          for (let read = 0; read <= t + 20 * MS; read += 3 * MS) {
            while (next < completions.length && completions[next]!.t <= read) {
              const c = completions[next]!;
              if (!(lose && next === drop)) r.record(c.t, c.sectors, c.discard);
              next++;
            }
            let w = 0;
            let d = 0;
            for (const c of completions) {
              if (c.t + 0.1 * MS <= read) {
                if (c.discard) d += c.sectors;
                else w += c.sectors;
              }
            }
            if (r.check({ tA: read, tB: read + 0.05 * MS, writeSectors: w, discardSectors: d })) found = true;
            if (armedAt === undefined && r.armed) armedAt = read;
          }
          if (!lose) assert.equal(found, false, "no false alarm");
          // A loss before the base was taken cannot be seen; one after it must be.
          else if (armedAt !== undefined && completions[drop]!.t > armedAt + 3 * MS) {
            assert.equal(found, true, "miss found");
          }
        }
      },
    ),
  );
});

test("a loss after the base is found even under constant load", () => {
  const r = new CounterReconciler(2 * MS);
  assert.equal(r.check({ tA: 0, tB: 0.1 * MS, writeSectors: 0, discardSectors: 0 }), undefined);
  assert.ok(r.armed);
  let counted = 0;
  let found = false;
  for (let t = 1 * MS; t < 1000 * MS; t += 0.5 * MS) {
    if (t !== 500 * MS) r.record(t, 8, false);
    counted += 8;
    if (Math.round(t / MS) % 10 === 0 && t % MS === 0) {
      // Counters read at t include everything up to t.
      if (r.check({ tA: t, tB: t + 0.05 * MS, writeSectors: counted, discardSectors: 0 })) found = true;
    }
  }
  assert.ok(found);
});

test("a completion counted late at the base: a false alarm without confirmation, none with it", () => {
  // Traced at 9.9 ms (before tA − margin) but counted by the kernel only after the read at 10 ms.
  const run = (validateNs: number) => {
    const r = new CounterReconciler(0.05 * MS, validateNs);
    r.record(9.9 * MS, 8, false);
    const alarms = [
      r.check({ tA: 10 * MS, tB: 10.01 * MS, writeSectors: 0, discardSectors: 0 }),
      r.check({ tA: 16 * MS, tB: 16.01 * MS, writeSectors: 8, discardSectors: 0 }),
      r.check({ tA: 22 * MS, tB: 22.01 * MS, writeSectors: 8, discardSectors: 0 }),
    ];
    r.record(25 * MS, 8, false);
    alarms.push(r.check({ tA: 30 * MS, tB: 30.01 * MS, writeSectors: 16, discardSectors: 0 }));
    return {
      alarms: alarms.filter((a) => a && !a.unconfirmed).length,
      unconfirmed: alarms.filter((a) => a?.unconfirmed),
      armed: r.armed,
      r,
    };
  };
  assert.equal(run(0).alarms, 3, "the base at 10 ms took the late completion as missing");
  const confirmed = run(5 * MS);
  assert.equal(confirmed.alarms, 0);
  // The candidate at 10 ms disagreed at 16 ms: reported for placing only, never as a gap.
  assert.deepEqual(confirmed.unconfirmed, [{ writeSectors: 8, discardSectors: 0, unconfirmed: true }]);
  assert.ok(confirmed.armed, "the second candidate (16 ms) was confirmed at 22 ms");
  // And a real miss after the confirmed base is still found.
  confirmed.r.record(35 * MS, 8, false);
  assert.deepEqual(confirmed.r.check({ tA: 40 * MS, tB: 40.01 * MS, writeSectors: 32, discardSectors: 0 }), {
    writeSectors: 8,
    discardSectors: 0,
  });
});

test("a miss absorbed into the base is not reported again; a new one is", () => {
  const r = new CounterReconciler(2 * MS);
  assert.equal(r.check({ tA: 10 * MS, tB: 11 * MS, writeSectors: 100, discardSectors: 0 }), undefined);
  r.record(20 * MS, 8, false);
  const missed = r.check({ tA: 30 * MS, tB: 31 * MS, writeSectors: 116, discardSectors: 0 });
  assert.deepEqual(missed, { writeSectors: 8, discardSectors: 0 });
  r.absorb(missed!);
  assert.ok(r.armed, "absorbing keeps the base: no unarmed window");
  assert.equal(r.check({ tA: 40 * MS, tB: 41 * MS, writeSectors: 116, discardSectors: 0 }), undefined);
  r.record(50 * MS, 8, false);
  assert.deepEqual(r.check({ tA: 60 * MS, tB: 61 * MS, writeSectors: 132, discardSectors: 0 }), {
    writeSectors: 8,
    discardSectors: 0,
  });
});

test("a real miss just after a base candidate is reported for placing, not lost with the candidate", () => {
  const r = new CounterReconciler(0.05 * MS, 5 * MS);
  r.record(1 * MS, 8, false);
  assert.equal(r.check({ tA: 10 * MS, tB: 10.01 * MS, writeSectors: 8, discardSectors: 0 }), undefined);
  // At 12 ms a write completes that the tracer never reports; the kernel counts it.
  const m = r.check({ tA: 16 * MS, tB: 16.01 * MS, writeSectors: 16, discardSectors: 0 });
  assert.deepEqual(m, { writeSectors: 8, discardSectors: 0, unconfirmed: true });
  assert.equal(r.armed, false, "that candidate is dropped");
  // The next candidate (16 ms) includes the miss; confirmed at 22 ms, later misses are found as usual.
  assert.equal(r.check({ tA: 22 * MS, tB: 22.01 * MS, writeSectors: 16, discardSectors: 0 }), undefined);
  assert.ok(r.armed);
  assert.deepEqual(r.check({ tA: 30 * MS, tB: 30.01 * MS, writeSectors: 24, discardSectors: 0 }), {
    writeSectors: 8,
    discardSectors: 0,
  });
});
