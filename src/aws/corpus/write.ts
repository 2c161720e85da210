/**
 * Builds the fixture corpus in memory and writes it to src/aws/fixtures:
 * one directory per case with the AWS CLI JSON (4-space indent, as the CLI
 * prints it), the source's hosts file, case.json (flags) and
 * expected-findings.json. Run: node src/aws/corpus/write.ts
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CASES, DEFAULT_ARGS, type CaseArgs, type FixtureCase } from "./cases.ts";
import { REFERENCE_HOSTS, referenceSetup } from "./reference.ts";
import { planBase } from "./plan-base.ts";

export const FIXTURES_DIR = new URL("../fixtures/", import.meta.url).pathname;

/** Every file of one case directory, by name, as text. */
export function renderCase(c: FixtureCase): Record<string, string> {
  const files = referenceSetup();
  c.mutate?.(files);
  const { noHosts, ...overrides } = c.args ?? {};
  const args: CaseArgs = { ...DEFAULT_ARGS, ...overrides };
  if (noHosts) delete args.sourceHosts;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(files)) out[name] = `${JSON.stringify(value, null, 4)}\n`;
  if (args.sourceHosts) out[args.sourceHosts] = c.hosts ?? REFERENCE_HOSTS;
  const clean = Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined));
  out["case.json"] = `${JSON.stringify({ description: c.description, args: clean }, null, 2)}\n`;
  out["expected-findings.json"] = `${JSON.stringify(c.expected, null, 2)}\n`;
  return out;
}

/** The network before `ferry aws plan` is deployed, as a collect directory (fixtures/plan-base). */
export const PLAN_BASE_DIR = "plan-base";

export function renderPlanBase(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(planBase()).map(([n, v]) => [n, `${JSON.stringify(v, null, 4)}\n`]),
  );
}

export async function writeCorpus(dir = FIXTURES_DIR): Promise<void> {
  const baseDir = join(dir, PLAN_BASE_DIR);
  await rm(baseDir, { recursive: true, force: true });
  await mkdir(baseDir, { recursive: true });
  for (const [name, text] of Object.entries(renderPlanBase())) await writeFile(join(baseDir, name), text);
  for (const c of CASES) {
    const caseDir = join(dir, c.name);
    await rm(caseDir, { recursive: true, force: true });
    await mkdir(caseDir, { recursive: true });
    for (const [name, text] of Object.entries(renderCase(c))) await writeFile(join(caseDir, name), text);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await writeCorpus();
