import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadInventory } from "../model/loader.ts";
import { checkInventory } from "../eval/check.ts";
import { CASES, type CaseArgs, type ExpectedFinding } from "./cases.ts";
import { FIXTURES_DIR, PLAN_BASE_DIR, renderCase, renderPlanBase } from "./write.ts";

const key = (f: ExpectedFinding) => `${f.flow} ${f.rule} ${f.code} ${f.resources.join(",")}`;

const dirs = readdirSync(FIXTURES_DIR, { withFileTypes: true }).filter(
  (d) => d.isDirectory() && !d.name.startsWith("plan"),
);

test("the corpus holds the reference and at least 20 misconfigurations", () => {
  const misconfigured = CASES.filter((c) => c.expected.length > 0);
  assert.ok(misconfigured.length >= 20, `${misconfigured.length} misconfigurations`);
  assert.deepEqual(dirs.map((d) => d.name).sort(), CASES.map((c) => c.name).sort());
});

test("the fixture files on disk are the ones the corpus builds (run node src/aws/corpus/write.ts after a change)", () => {
  for (const c of CASES) {
    const rendered = renderCase(c);
    const onDisk = readdirSync(join(FIXTURES_DIR, c.name)).sort();
    assert.deepEqual(onDisk, Object.keys(rendered).sort(), c.name);
    for (const [name, text] of Object.entries(rendered)) {
      assert.equal(readFileSync(join(FIXTURES_DIR, c.name, name), "utf8"), text, `${c.name}/${name}`);
    }
  }
  const base = renderPlanBase();
  assert.deepEqual(readdirSync(join(FIXTURES_DIR, PLAN_BASE_DIR)).sort(), Object.keys(base).sort());
  for (const [name, text] of Object.entries(base)) {
    assert.equal(
      readFileSync(join(FIXTURES_DIR, PLAN_BASE_DIR, name), "utf8"),
      text,
      `${PLAN_BASE_DIR}/${name}`,
    );
  }
});

for (const d of dirs) {
  test(`fixture ${d.name}: exactly the expected findings`, async () => {
    const dir = join(FIXTURES_DIR, d.name);
    const { args } = JSON.parse(readFileSync(join(dir, "case.json"), "utf8")) as { args: CaseArgs };
    const expected = JSON.parse(
      readFileSync(join(dir, "expected-findings.json"), "utf8"),
    ) as ExpectedFinding[];
    const report = checkInventory(await loadInventory(dir), {
      ...(args.sourceSubnet ? { sourceSubnetId: args.sourceSubnet } : {}),
      ...(args.sourceCidr ? { sourceCidr: args.sourceCidr } : {}),
      ...(args.sourceGroups ? { sourceGroupIds: args.sourceGroups } : {}),
      ...(args.sourceHosts
        ? {
            sourceHosts: readFileSync(join(dir, args.sourceHosts), "utf8"),
            sourceHostsName: args.sourceHosts,
          }
        : {}),
    });
    const actual = report.flows.flatMap((f) =>
      f.findings.map((x) => ({ flow: f.flow, rule: x.rule, code: x.code, resources: x.resources })),
    );
    assert.deepEqual(actual.map(key).sort(), expected.map(key).sort());
    for (const f of report.flows) assert.equal(f.ok, !expected.some((e) => e.flow === f.flow), f.flow);
    for (const f of report.flows.flatMap((x) => x.findings)) {
      assert.ok(f.found.length > 0 && f.fix.length > 0, `${f.code} has found and fix`);
    }
  });
}
