/** The terminal report: one line per flow with ✓/✗, then its findings, then what to run on the source. */
import { FLOW_TITLES, type CheckReport, type FlowResult } from "../eval/findings.ts";

export interface TerminalOptions {
  /** The MGN step/error the report was focused on (--from-error). */
  focus?: { error: string; flows: string[] };
}

function flowLines(f: FlowResult): string[] {
  const lines = [`${f.ok ? "✓" : "✗"} ${f.flow}  ${FLOW_TITLES[f.flow]}`];
  for (const x of f.findings) {
    lines.push(`    ✗ ${x.rule} ${x.code}  ${x.resources.join(", ")}`);
    lines.push(`      found: ${x.found}`);
    lines.push(`      fix:   ${x.fix}`);
  }
  return lines;
}

export function renderTerminal(report: CheckReport, options: TerminalOptions = {}): string {
  const lines: string[] = [`ferry aws check: staging VPC ${report.stagingVpcId ?? "?"} in ${report.region}`];
  if (options.focus)
    lines.push(`${options.focus.error} points at ${options.focus.flows.join(", ")} (OBS-01)`);
  lines.push("");
  for (const f of report.flows) lines.push(...flowLines(f));
  const d = report.derived;
  lines.push("", "On the source:");
  lines.push(`  --s3-endpoint   ${d.s3Endpoint ?? "(no S3 interface endpoint)"}`);
  lines.push(`  installer URL   ${d.installerUrl ?? "(no S3 interface endpoint)"}`);
  lines.push(`  --endpoint      ${d.endpoint ?? "(no mgn interface endpoint)"}`);
  lines.push(`  hosts lines     ${d.hostsLines.length ? d.hostsLines[0] : "(no endpoint ENIs)"}`);
  for (const h of d.hostsLines.slice(1)) lines.push(`                  ${h}`);
  for (const n of report.notes) lines.push(`note: ${n}`);
  const blocked = report.flows.filter((f) => !f.ok);
  const count = blocked.reduce((n, f) => n + f.findings.length, 0);
  lines.push(
    "",
    blocked.length === 0
      ? `All ${report.flows.length} flows open.`
      : `${report.flows.length - blocked.length} of ${report.flows.length} flows open; ${count} blocker${count === 1 ? "" : "s"} on ${blocked.map((f) => f.flow).join(", ")}.`,
  );
  return `${lines.join("\n")}\n`;
}

/** The `--json` shape: flows and derived values, nothing else. */
export function toJson(report: CheckReport): {
  flows: {
    flow: string;
    ok: boolean;
    findings: { rule: string; code: string; resources: string[]; found: string; fix: string }[];
  }[];
  derived: CheckReport["derived"];
} {
  return {
    flows: report.flows.map((f) => ({
      flow: f.flow,
      ok: f.ok,
      findings: f.findings.map(({ rule, code, resources, found, fix }) => ({
        rule,
        code,
        resources,
        found,
        fix,
      })),
    })),
    derived: report.derived,
  };
}
