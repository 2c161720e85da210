import type { TrackerGap, TrackerGapCode } from "./types.ts";

const MAX_REASON = 1000;

/** A new gap, or `current` with one more cause appended (the first cause's code and time are kept). */
export function addGap(current: TrackerGap | undefined, code: TrackerGapCode, reason: string): TrackerGap {
  if (!current) return { code, reason, since: new Date().toISOString() };
  if (current.reason.includes(reason)) return current;
  const joined = `${current.reason}; then ${reason}`;
  return { ...current, reason: joined.length > MAX_REASON ? `${joined.slice(0, MAX_REASON - 1)}…` : joined };
}
