import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MAX_LINE,
  TraceParser,
  type TraceEvent,
  formatTraceEvent,
  opOf,
  parseTraceLine,
} from "./trace-parser.ts";

const rwbs = fc.constantFrom("W", "WS", "WFS", "FWS", "WM", "WSM", "D", "DS", "DE", "N", "NS", "FWFS");
const timeNs = fc.bigInt({ min: 0n, max: 2n ** 63n });
const sector = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const sectors = fc.integer({ min: 1, max: 0xffffffff });

const event: fc.Arbitrary<TraceEvent> = fc.oneof(
  fc.record({ rwbs, timeNs, sector, sectors }).map((r) => ({ kind: "io" as const, op: opOf(r.rwbs), ...r })),
  fc.record({ timeNs, sector, sectors }).map((r) => ({ kind: "probe" as const, ...r })),
  fc.record({ timeNs, sector, sectors }).map((r) => ({ kind: "issue" as const, ...r })),
  fc.constant({ kind: "ready" as const }),
  timeNs.map((t) => ({ kind: "tick" as const, timeNs: t })),
  fc.integer({ min: 1, max: 999 }).map((probes) => ({ kind: "attached" as const, probes })),
  fc.integer({ min: 1, max: 2 ** 40 }).map((count) => ({ kind: "lost" as const, count })),
);

function feedAll(parser: TraceParser, bytes: Buffer, cuts: number[]): TraceEvent[] {
  const out: TraceEvent[] = [];
  let at = 0;
  for (const cut of [...cuts.sort((a, b) => a - b), bytes.length]) {
    out.push(...parser.push(bytes.subarray(at, cut)));
    at = cut;
  }
  return [...out, ...parser.end()];
}

test("the lines bpftrace prints parse into events", () => {
  assert.deepEqual(parseTraceLine("WS 1234567890 640 128"), {
    kind: "io",
    op: "write",
    rwbs: "WS",
    timeNs: 1234567890n,
    sector: 640,
    sectors: 128,
  });
  assert.equal((parseTraceLine("DS 1 2048 2048") as { op: string }).op, "discard");
  assert.equal((parseTraceLine("FWFS 1 8 8") as { op: string }).op, "write");
  // REQ_OP_WRITE_ZEROES prints as N: still a change.
  assert.equal((parseTraceLine("NS 1 4096 128") as { op: string }).op, "other");
  assert.deepEqual(parseTraceLine("Lost 57018 events"), { kind: "lost", count: 57018 });
  assert.deepEqual(parseTraceLine("Attaching 2 probes..."), { kind: "attached", probes: 2 });
  assert.deepEqual(parseTraceLine("Attaching 1 probe..."), { kind: "attached", probes: 1 });
  assert.deepEqual(parseTraceLine("ready"), { kind: "ready" });
  assert.equal(parseTraceLine("probe 5 56 8").kind, "probe");
  assert.deepEqual(parseTraceLine("i 77 2048 8"), { kind: "issue", timeNs: 77n, sector: 2048, sectors: 8 });
  for (const bad of [
    "",
    "WS 1 2",
    "WS 1 2 3 4",
    "ws 1 2 3",
    "WS -1 2 3",
    "WS 1 99999999999999999999 3",
    "Lost events",
    "i 1 2",
    "i 1 2 3 4",
    "i 1 99999999999999999999 3",
  ]) {
    assert.equal(parseTraceLine(bad).kind, "unknown", bad);
  }
});

test("property: format then parse is the identity", () => {
  fc.assert(
    fc.property(event, (e) => {
      assert.deepEqual(parseTraceLine(formatTraceEvent(e)), e);
    }),
  );
});

test("a stream cut at every byte gives the same events", () => {
  const events: TraceEvent[] = [
    { kind: "attached", probes: 2 },
    { kind: "ready" },
    { kind: "io", op: "write", rwbs: "WS", timeNs: 99n, sector: 640, sectors: 128 },
    { kind: "lost", count: 3 },
    { kind: "tick", timeNs: 12345n },
    { kind: "io", op: "discard", rwbs: "DS", timeNs: 100n, sector: 2048, sectors: 2048 },
    { kind: "probe", timeNs: 101n, sector: 0, sectors: 8 },
  ];
  const bytes = Buffer.from(events.map((e) => `${formatTraceEvent(e)}\n`).join(""));
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(feedAll(new TraceParser(), bytes, [cut]), events, `cut at ${cut}`);
  }
  // One byte at a time.
  const parser = new TraceParser();
  const out: TraceEvent[] = [];
  for (const b of bytes) out.push(...parser.push(Buffer.from([b])));
  assert.deepEqual(out, events);
});

test("property: any cuts of a stream of events give the same events", () => {
  fc.assert(
    fc.property(fc.array(event, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 10 }), (events, cuts) => {
      const bytes = Buffer.from(events.map((e) => `${formatTraceEvent(e)}\n`).join(""));
      const at = cuts.map((c) => (bytes.length ? c % bytes.length : 0));
      assert.deepEqual(feedAll(new TraceParser(), bytes, at), events);
    }),
  );
});

test("property: damaged output gives typed events only, never a throw, and every line is accounted for", () => {
  const damaged = fc
    .tuple(event, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("flip", "truncate", "insert"))
    .map(([e, pos, byte, how]) => {
      const line = Buffer.from(formatTraceEvent(e));
      const i = pos % (line.length + 1);
      if (how === "truncate") return line.subarray(0, i);
      if (how === "insert")
        return Buffer.concat([line.subarray(0, i), Buffer.from([byte]), line.subarray(i)]);
      const copy = Buffer.from(line);
      if (i < copy.length) copy[i] = byte;
      return copy;
    });
  fc.assert(
    fc.property(fc.array(damaged, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 6 }), (lines, cuts) => {
      const bytes = Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")]));
      const at = cuts.map((c) => (bytes.length ? c % bytes.length : 0));
      const out = feedAll(new TraceParser(), bytes, at);
      const kinds = new Set(["io", "issue", "probe", "ready", "tick", "attached", "lost", "unknown"]);
      for (const e of out) assert.ok(kinds.has(e.kind));
      // Lines are only split by "\n": one event per non-empty line.
      const expected = bytes
        .toString("latin1")
        .split("\n")
        .filter((l) => l.length > 0).length;
      assert.equal(out.length, expected);
    }),
  );
});

test("an endless line is reported once as unknown, without buffering it whole", () => {
  const parser = new TraceParser();
  const out: TraceEvent[] = [];
  for (let i = 0; i < 100; i++) out.push(...parser.push(Buffer.alloc(MAX_LINE, 0x41)));
  assert.equal(out.length, 0);
  out.push(...parser.push(Buffer.from("tail\nready\n")));
  assert.equal(out.length, 2);
  assert.equal(out[0]!.kind, "unknown");
  assert.deepEqual(out[1], { kind: "ready" });
});
