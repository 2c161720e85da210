/**
 * The doctor's two outputs: a terminal report (one line per flow, ✓ or ✗,
 * then what was observed, the likely cause and the fix for a failure) and
 * the JSON a script reads (`{flows: [{flow, ok, observed, cause, fix, …}]}`).
 */
import { FLOW_TITLES } from "../../model/flows.ts";
import type { DoctorFinding } from "./checks.ts";

export function renderReport(findings: readonly DoctorFinding[]): string {
  const lines: string[] = [];
  for (const f of findings) {
    const mark = f.skipped ? (f.ok ? "-" : "✗") : f.ok ? "✓" : "✗";
    const head = `${mark} ${f.flow} ${FLOW_TITLES[f.flow]}`;
    if (f.ok) {
      lines.push(`${head}: ${f.observed}`);
      continue;
    }
    lines.push(`${head}${f.code ? ` [${f.code}]` : ""}`);
    lines.push(`    observed: ${f.observed}`);
    if (f.cause) lines.push(`    cause:    ${f.cause}`);
    if (f.fix) lines.push(`    fix:      ${f.fix}`);
  }
  const failing = findings.filter((f) => !f.ok).length;
  lines.push(failing ? `${failing} flow(s) failing` : "all flows open");
  return `${lines.join("\n")}\n`;
}

export function reportJson(findings: readonly DoctorFinding[]): { ok: boolean; flows: DoctorFinding[] } {
  return { ok: findings.every((f) => f.ok), flows: [...findings] };
}
