/**
 * A self-contained HTML report (no external assets) that a person can attach
 * to a ticket: an inline SVG of the source network and the staging VPC with
 * the seven flows drawn green or red, then every finding.
 */
import { FLOW_TITLES, type CheckReport, type FlowId, type Topology } from "../eval/findings.ts";

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

const GREEN = "#1a7f37";
const RED = "#cf222e";

interface Node {
  x: number;
  y: number;
  label: string;
  /** Which topology entry names the resource under the label. */
  id: keyof Topology | null;
}

const NODES: Record<string, Node> = {
  source: { x: 120, y: 255, label: "source servers", id: "source" },
  dns: { x: 120, y: 345, label: "hosts / DNS", id: null },
  s3i: { x: 470, y: 105, label: "S3 interface endpoint", id: "s3Interface" },
  mgn: { x: 470, y: 195, label: "mgn endpoint", id: "mgn" },
  resolver: { x: 470, y: 345, label: "inbound resolver", id: "resolver" },
  rs: { x: 700, y: 250, label: "replication server (virtual)", id: "replicationServers" },
  ec2: { x: 700, y: 130, label: "ec2 endpoint", id: "ec2" },
  s3g: { x: 700, y: 380, label: "S3 gateway endpoint", id: "s3Gateway" },
};

const EDGES: [FlowId, string, string][] = [
  ["F1", "source", "s3i"],
  ["F2", "source", "mgn"],
  ["F3", "dns", "resolver"],
  ["F4", "rs", "mgn"],
  ["F5", "rs", "ec2"],
  ["F6", "rs", "s3g"],
  ["F7", "source", "rs"],
];

function diagram(report: CheckReport): string {
  const ok = new Map(report.flows.map((f) => [f.flow, f.ok]));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 860 440" width="860" height="440" role="img" aria-label="flows between the source network and the staging VPC">`,
    `<rect x="10" y="40" width="230" height="380" rx="10" fill="#f6f8fa" stroke="#8c959f"/>`,
    `<text x="20" y="62" font-size="14" font-weight="bold">Source network</text>`,
    `<rect x="330" y="40" width="520" height="380" rx="10" fill="#f6f8fa" stroke="#8c959f"/>`,
    `<text x="340" y="62" font-size="14" font-weight="bold">Staging VPC ${escapeHtml(report.stagingVpcId ?? "")} (${escapeHtml(report.region)})</text>`,
  ];
  for (const [flow, a, b] of EDGES) {
    const from = NODES[a];
    const to = NODES[b];
    const known = ok.get(flow);
    if (!from || !to || known === undefined) continue;
    const color = known ? GREEN : RED;
    const mx = (from.x + to.x) / 2;
    const my = (from.y + to.y) / 2;
    parts.push(
      `<g class="flow" data-flow="${flow}" data-ok="${known}"><line x1="${from.x}" y1="${from.y}" x2="${to.x}" y2="${to.y}" stroke="${color}" stroke-width="3"${flow === "F3" ? ' stroke-dasharray="6 4"' : ""}/>` +
        `<text x="${mx}" y="${my - 6}" font-size="13" font-weight="bold" fill="${color}">${flow} ${known ? "✓" : "✗"}</text></g>`,
    );
  }
  for (const n of Object.values(NODES)) {
    const value = n.id ? report.topology[n.id] : null;
    const id = Array.isArray(value) ? value.join(", ") : (value ?? (n.id ? "missing" : ""));
    parts.push(
      `<rect x="${n.x - 85}" y="${n.y - 20}" width="170" height="40" rx="6" fill="#ffffff" stroke="#57606a"/>`,
      `<text x="${n.x}" y="${n.y - 3}" font-size="12" text-anchor="middle">${escapeHtml(n.label)}</text>`,
      `<text x="${n.x}" y="${n.y + 12}" font-size="9" text-anchor="middle" fill="#57606a">${escapeHtml(id)}</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("\n");
}

export function renderHtml(report: CheckReport, generatedAt = new Date()): string {
  const rows = report.flows
    .map((f) => {
      const head = `<h2 class="${f.ok ? "ok" : "bad"}">${f.ok ? "✓" : "✗"} ${f.flow} — ${escapeHtml(FLOW_TITLES[f.flow])}</h2>`;
      if (f.ok) return head;
      const items = f.findings
        .map(
          (x) =>
            `<tr><td>${escapeHtml(x.rule)}</td><td><code>${escapeHtml(x.code)}</code></td><td>${x.resources.map((r) => `<code>${escapeHtml(r)}</code>`).join("<br>")}</td><td>${escapeHtml(x.found)}</td><td><code>${escapeHtml(x.fix)}</code></td></tr>`,
        )
        .join("\n");
      return `${head}\n<table><tr><th>Rule</th><th>Code</th><th>Resources</th><th>Found</th><th>Fix</th></tr>\n${items}\n</table>`;
    })
    .join("\n");
  const d = report.derived;
  const derived = [
    ["--s3-endpoint", d.s3Endpoint ?? "—"],
    ["installer URL", d.installerUrl ?? "—"],
    ["--endpoint", d.endpoint ?? "—"],
    ["hosts lines", d.hostsLines.join("\n") || "—"],
  ]
    .map(([k, v]) => `<tr><th>${escapeHtml(k ?? "")}</th><td><pre>${escapeHtml(v ?? "")}</pre></td></tr>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferry aws check — ${escapeHtml(report.stagingVpcId ?? "")}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328}
h2.ok{color:${GREEN};font-size:16px}h2.bad{color:${RED};font-size:16px}
table{border-collapse:collapse;margin:6px 0 18px}td,th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left;font-size:13px}
code,pre{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-all;margin:0}
</style></head><body>
<h1>AWS MGN private network check</h1>
<p>Staging VPC <code>${escapeHtml(report.stagingVpcId ?? "")}</code> in <code>${escapeHtml(report.region)}</code>; generated ${escapeHtml(generatedAt.toISOString())} by ferry aws check.</p>
${diagram(report)}
${rows}
<h2>On the source</h2>
<table>${derived}</table>
${report.notes.length ? `<h2>Notes</h2><ul>${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>` : ""}
</body></html>
`;
}
