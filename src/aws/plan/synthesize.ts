/**
 * Synthesises the staging area to a CloudFormation template with aws-cdk-lib,
 * offline: no account, no lookups, no bootstrap parameters, no metadata.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, BootstraplessSynthesizer, Stack } from "aws-cdk-lib";
import { FerryError } from "../../lib/errors.ts";
import { tryParseCidr } from "../model/cidr.ts";
import { MgnStagingArea, type MgnStagingAreaProps } from "./staging-area.ts";

export interface PlanOptions extends MgnStagingAreaProps {
  /** @default "FerryMgnStaging" */
  stackName?: string;
}

/** The CloudFormation template, as JSON. */
export type CfnTemplate = {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
} & Record<string, unknown>;

function validate(o: PlanOptions): void {
  for (const [flag, value] of [
    ["--vpc-cidr", o.vpcCidr],
    ["--subnet-cidr", o.stagingSubnetCidr],
    ...o.sourceCidrs.map((c) => ["--source-cidr", c] as const),
  ] as const) {
    if (!tryParseCidr(value))
      throw new FerryError("AWS_BAD_CIDR", `${flag} ${value}: not an IPv4 CIDR; use the form 10.1.0.0/16`);
  }
  for (const [flag, value, prefix] of [
    ["--staging-vpc", o.stagingVpcId, "vpc-"],
    ["--staging-subnet", o.stagingSubnetId, "subnet-"],
    ["--route-table", o.routeTableId, "rtb-"],
  ] as const) {
    if (!value.startsWith(prefix))
      throw new FerryError("AWS_BAD_ID", `${flag} ${value}: expected an id starting with ${prefix}`);
  }
  if (o.sourceCidrs.length === 0) throw new FerryError("AWS_NO_SOURCE", "pass at least one --source-cidr");
}

/** Builds the stack in `app` (for CDK assertion tests); synthesizePlan wraps it. */
export function buildPlanStack(app: App, options: PlanOptions): { stack: Stack; area: MgnStagingArea } {
  validate(options);
  const stack = new Stack(app, options.stackName ?? "FerryMgnStaging", {
    env: { region: options.region },
    synthesizer: new BootstraplessSynthesizer(),
    analyticsReporting: false,
    description: "Ferry: AWS MGN staging area over a private network (ferry aws plan)",
  });
  const area = new MgnStagingArea(stack, "MgnStagingArea", options);
  return { stack, area };
}

/** An App that never reaches out: no version reporting, no notices, output in a temp dir. */
export function offlineApp(outdir: string): App {
  return new App({
    outdir,
    analyticsReporting: false,
    // The built-in CloudFormation validation does not know AWS::MGN types yet and prints warnings.
    builtinCloudFormationValidation: false,
    context: { "aws:cdk:disable-version-reporting": true, "@aws-cdk/core:newStyleStackSynthesis": true },
  });
}

export function synthesizePlan(options: PlanOptions): CfnTemplate {
  const outdir = mkdtempSync(join(tmpdir(), "ferry-aws-plan-"));
  try {
    const app = offlineApp(outdir);
    const { stack } = buildPlanStack(app, options);
    return app.synth().getStackArtifact(stack.artifactId).template as CfnTemplate;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
