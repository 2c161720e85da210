/** ISO 8601 helpers in the forms MGN returns (`2024-01-02T03:04:05.678Z`, `PT1H2M3S`). */

export function isoDateTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** A non-negative duration in milliseconds as ISO 8601 (`P1DT2H3M4S`, `PT0S`). */
export function isoDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const time = `${h ? `${h}H` : ""}${m ? `${m}M` : ""}${s || (!h && !m) ? `${s}S` : ""}`;
  return d ? `P${d}DT${time}` : `PT${time}`;
}
