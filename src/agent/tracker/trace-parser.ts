/**
 * Incremental parser of the tracer's output (see bpftrace-script.ts). The
 * stream is cut into lines anywhere; each complete line becomes one event:
 *
 *   WS 123456789 2048 128      rwbs, ktime ns, first sector, sectors  (write, discard, write-zeroes completed)
 *   i 123456789 2048 128       a write, discard or write-zeroes request issued: ktime ns, first sector, sectors
 *   probe 123456789 2048 8     a read covering the self-test sector was seen
 *   ready                      the script's BEGIN ran: every probe is attached
 *   tick 123456789             once a second on every CPU (a heartbeat; it also makes the
 *                              kernel flush a pending lost-events record on that CPU)
 *   Attaching 2 probes...      bpftrace's banner
 *   Lost 17 events             bpftrace's ring buffer overflowed: a gap
 *
 * Anything else is reported as `unknown`: the tracker treats it as a gap,
 * because output it cannot read may hide writes.
 */

export type TraceOp = "write" | "discard" | "other";

export type TraceEvent =
  | { kind: "io"; op: TraceOp; rwbs: string; timeNs: bigint; sector: number; sectors: number }
  | { kind: "issue"; timeNs: bigint; sector: number; sectors: number }
  | { kind: "probe"; timeNs: bigint; sector: number; sectors: number }
  | { kind: "ready" }
  | { kind: "tick"; timeNs: bigint }
  | { kind: "attached"; probes: number }
  | { kind: "lost"; count: number }
  | { kind: "unknown"; line: string };

/** Longest line we accept; a longer one is reported as unknown without being buffered whole. */
export const MAX_LINE = 256;

const IO = /^([A-Z]{1,9}) (\d{1,20}) (\d{1,20}) (\d{1,10})$/;
const ISSUE = /^i (\d{1,20}) (\d{1,20}) (\d{1,10})$/;
const PROBE = /^probe (\d{1,20}) (\d{1,20}) (\d{1,10})$/;
const TICK = /^tick (\d{1,20})$/;
const LOST = /^Lost (\d{1,20}) events$/;
const ATTACHED = /^Attaching (\d{1,6}) probes?\.\.\.$/;

/** The op an rwbs string names (block/blk-core.c blk_fill_rwbs): D discard, W write, N other (write-zeroes, zone ops). */
export function opOf(rwbs: string): TraceOp {
  const body = rwbs.startsWith("F") && rwbs.length > 1 ? rwbs.slice(1) : rwbs;
  if (body.startsWith("D")) return "discard";
  if (body.startsWith("W")) return "write";
  return "other";
}

export function parseTraceLine(line: string): TraceEvent {
  let m = IO.exec(line);
  if (m) {
    const sector = Number(m[3]);
    const sectors = Number(m[4]);
    if (Number.isSafeInteger(sector) && sectors <= 0xffffffff) {
      return { kind: "io", op: opOf(m[1]!), rwbs: m[1]!, timeNs: BigInt(m[2]!), sector, sectors };
    }
    return { kind: "unknown", line };
  }
  m = ISSUE.exec(line);
  if (m) {
    const sector = Number(m[2]);
    const sectors = Number(m[3]);
    if (Number.isSafeInteger(sector) && sectors <= 0xffffffff)
      return { kind: "issue", timeNs: BigInt(m[1]!), sector, sectors };
    return { kind: "unknown", line };
  }
  if (line === "ready") return { kind: "ready" };
  m = PROBE.exec(line);
  if (m) {
    const sector = Number(m[2]);
    if (Number.isSafeInteger(sector)) {
      return { kind: "probe", timeNs: BigInt(m[1]!), sector, sectors: Number(m[3]) };
    }
    return { kind: "unknown", line };
  }
  m = TICK.exec(line);
  if (m) return { kind: "tick", timeNs: BigInt(m[1]!) };
  m = LOST.exec(line);
  if (m) return { kind: "lost", count: Number(m[1]) };
  m = ATTACHED.exec(line);
  if (m) return { kind: "attached", probes: Number(m[1]) };
  return { kind: "unknown", line };
}

/** Turns chunks of output (cut anywhere, even inside a UTF-8 sequence) into events. */
export class TraceParser {
  private pending = "";
  private overlong = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  /** Feeds a chunk; returns the events of the lines it completed. */
  push(chunk: Uint8Array): TraceEvent[] {
    const text = this.pending + this.decoder.decode(chunk, { stream: true });
    const out: TraceEvent[] = [];
    let at = 0;
    for (;;) {
      const nl = text.indexOf("\n", at);
      if (nl < 0) break;
      const line = text.slice(at, nl);
      at = nl + 1;
      if (this.overlong) {
        this.overlong = false;
        out.push({ kind: "unknown", line: `${line.slice(0, 64)}… (over ${MAX_LINE} characters)` });
        continue;
      }
      if (line.length > 0) out.push(parseTraceLine(line));
    }
    this.pending = text.slice(at);
    if (this.pending.length > MAX_LINE) {
      this.overlong = true;
      this.pending = "";
    }
    return out;
  }

  /** Call at end of stream: an unterminated last line is still an event. */
  end(): TraceEvent[] {
    const rest = this.pending + this.decoder.decode();
    this.pending = "";
    if (this.overlong) {
      this.overlong = false;
      return [{ kind: "unknown", line: `(unterminated line over ${MAX_LINE} characters)` }];
    }
    return rest.length ? [parseTraceLine(rest)] : [];
  }
}

/** The line for an event (the inverse of parseTraceLine, for tests and tools). */
export function formatTraceEvent(e: TraceEvent): string {
  switch (e.kind) {
    case "io":
      return `${e.rwbs} ${e.timeNs} ${e.sector} ${e.sectors}`;
    case "issue":
      return `i ${e.timeNs} ${e.sector} ${e.sectors}`;
    case "probe":
      return `probe ${e.timeNs} ${e.sector} ${e.sectors}`;
    case "ready":
      return "ready";
    case "tick":
      return `tick ${e.timeNs}`;
    case "attached":
      return `Attaching ${e.probes} ${e.probes === 1 ? "probe" : "probes"}...`;
    case "lost":
      return `Lost ${e.count} events`;
    case "unknown":
      return e.line;
  }
}
