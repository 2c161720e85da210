/**
 * `ferry aws plan --check-against <dir>`: deploys the plan on paper into a
 * collected network (a `ferry aws collect` directory) and runs the check on
 * the result, so a plan is known to open every flow before it is deployed.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { checkInventory, type CheckOptions } from "../eval/check.ts";
import type { CheckReport } from "../eval/findings.ts";
import { loadInventory } from "../model/loader.ts";
import type { CfnTemplate } from "./synthesize.ts";
import { deployPlan, type DescribeFiles } from "./to-describe.ts";

/** Reads every AWS CLI JSON file of `dir` (validation happens after the plan is applied). */
async function readDescribeFiles(dir: string): Promise<DescribeFiles> {
  const files: DescribeFiles = {};
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new FerryError(
      "AWS_INPUT_MISSING",
      `--check-against ${dir}: cannot list the directory (${String(err)})`,
      {
        cause: err,
      },
    );
  }
  for (const name of names.filter(
    (n) => n.endsWith(".json") && n !== "case.json" && n !== "expected-findings.json",
  )) {
    try {
      files[name] = JSON.parse(await readFile(join(dir, name), "utf8")) as unknown;
    } catch (err) {
      throw new FerryError("AWS_INPUT_INVALID", `${name}: not JSON (${(err as Error).message})`, {
        cause: err,
      });
    }
  }
  return files;
}

export async function previewPlan(
  template: CfnTemplate,
  dir: string,
  region: string,
  options: CheckOptions,
): Promise<CheckReport> {
  const deployed = deployPlan(template, await readDescribeFiles(dir), region);
  const out = await mkdtemp(join(tmpdir(), "ferry-aws-preview-"));
  try {
    for (const [name, value] of Object.entries(deployed))
      await writeFile(join(out, name), JSON.stringify(value));
    return checkInventory(await loadInventory(out), options);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
