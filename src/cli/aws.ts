/**
 * `ferry aws check|plan|collect`: plan and check the private-network setup of
 * AWS MGN itself. Thin: the work lives in src/aws.
 */
import { readFile, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { FerryError } from "../lib/errors.ts";
import {
  checkInventory,
  collectInventory,
  flowsForError,
  loadInventory,
  previewPlan,
  renderHtml,
  renderTerminal,
  synthesizePlan,
  toJson,
} from "../aws/index.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";

const collectList = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(",").filter(Boolean),
];

interface CheckFlags {
  sourceCidr?: string;
  sourceSubnet?: string;
  sourceGroup?: string[];
  sourceHosts?: string;
  region?: string;
  stagingVpc?: string;
  json?: boolean;
  html?: string;
  fromError?: string;
}

async function readText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new FerryError("AWS_INPUT_UNREADABLE", `${flag} ${path}: cannot read (${(err as Error).message})`, {
      cause: err,
    });
  }
}

async function runCheck(ctx: CliContext, dir: string, flags: CheckFlags): Promise<void> {
  const focus = flags.fromError
    ? { error: flags.fromError, flows: flowsForError(flags.fromError) }
    : undefined;
  const inventory = await loadInventory(dir);
  const report = checkInventory(inventory, {
    ...(flags.sourceCidr ? { sourceCidr: flags.sourceCidr } : {}),
    ...(flags.sourceSubnet ? { sourceSubnetId: flags.sourceSubnet } : {}),
    ...(flags.sourceGroup ? { sourceGroupIds: flags.sourceGroup } : {}),
    ...(flags.sourceHosts
      ? {
          sourceHosts: await readText(flags.sourceHosts, "--source-hosts"),
          sourceHostsName: flags.sourceHosts,
        }
      : {}),
    ...(flags.region ? { region: flags.region } : {}),
    ...(flags.stagingVpc ? { stagingVpcId: flags.stagingVpc } : {}),
  });
  if (focus) report.flows = report.flows.filter((f) => focus.flows.includes(f.flow));
  if (flags.html) await writeFile(flags.html, renderHtml(report));
  if (flags.json) writeJson(ctx.stdout, toJson(report));
  else ctx.stdout.write(renderTerminal(report, focus ? { focus } : {}));
  if (flags.html && !flags.json) writeLine(ctx.stderr, `HTML report written to ${flags.html}`);
  // Blocked flows are a result, not a usage error: exit 1 so scripts and CI notice.
  if (report.flows.some((f) => !f.ok)) ctx.exitCode = 1;
}

export function registerAws(program: Command, ctx: CliContext): void {
  const aws = program
    .command("aws")
    .description("Plan and check the private-network setup of AWS MGN itself");

  aws
    .command("check")
    .description(
      "Check a directory of AWS CLI describe-* JSON: flows F1–F7, every blocker, and the values the source needs",
    )
    .argument("<dir>", "directory written by ferry aws collect (one file per AWS CLI command)")
    .option(
      "--source-cidr <cidr>",
      "the source servers' addresses (on premises, or narrower than --source-subnet)",
    )
    .option("--source-subnet <subnet-id>", "the source's subnet when it is itself in a described VPC")
    .option(
      "--source-group <sg-id>",
      "the source servers' security group (repeatable; default: the VPC's default group)",
      collectList,
    )
    .option(
      "--source-hosts <file>",
      "the source's hosts file (else DNS through an inbound resolver is checked)",
    )
    .option("--region <region>", "the region (default: from the staging subnet's availability zone)")
    .option("--staging-vpc <vpc-id>", "the staging VPC (default: the replication template's subnet's VPC)")
    .option("--from-error <step-or-error>", "focus on the flows an MGN initiation step or error points at")
    .option("--html <file>", "also write a self-contained HTML report with a diagram")
    .option("--json", "print the result as JSON")
    .action((dir: string, flags: CheckFlags) => runCheck(ctx, dir, flags));

  aws
    .command("plan")
    .description("Emit the staging-area setup as CloudFormation (synthesised with aws-cdk-lib)")
    .requiredOption("--staging-vpc <vpc-id>", "the staging VPC")
    .requiredOption("--vpc-cidr <cidr>", "the staging VPC's CIDR")
    .requiredOption("--staging-subnet <subnet-id>", "the staging subnet (replication servers and endpoints)")
    .requiredOption("--subnet-cidr <cidr>", "the staging subnet's CIDR")
    .requiredOption("--route-table <rtb-id>", "the route table the staging subnet really uses")
    .requiredOption("--availability-zone <az>", "the staging subnet's availability zone")
    .requiredOption("--source-cidr <cidr>", "a source CIDR (repeatable)", collectList)
    .option("--region <region>", "the region (default: from the availability zone)")
    .option("--dns <mode>", "how the source resolves the endpoints: hosts or resolver", "hosts")
    .option(
      "--resolver-subnet <subnet-id>",
      "subnets for the inbound resolver's two addresses (repeatable; default: the staging subnet twice)",
      collectList,
    )
    .option("--stack-name <name>", "the CloudFormation stack name", "FerryMgnStaging")
    .option("--output <file>", "write the template to a file instead of stdout")
    .option("--check-against <dir>", "deploy the plan on paper into a collected network and check every flow")
    .option("--source-subnet <subnet-id>", "with --check-against: the source's subnet in a collected VPC")
    .option(
      "--source-group <sg-id>",
      "with --check-against: the source servers' group (repeatable)",
      collectList,
    )
    .option("--source-hosts <file>", "with --check-against: the source's hosts file")
    .option("--json", "with --check-against: print the check as JSON")
    .action(async (flags: PlanFlags) => {
      if (flags.dns !== "hosts" && flags.dns !== "resolver") {
        throw new FerryError("AWS_BAD_DNS_MODE", `--dns ${flags.dns}: use hosts or resolver`);
      }
      const region = flags.region ?? flags.availabilityZone.replace(/[a-z]$/, "");
      const template = synthesizePlan({
        stackName: flags.stackName,
        region,
        stagingVpcId: flags.stagingVpc,
        vpcCidr: flags.vpcCidr,
        stagingSubnetId: flags.stagingSubnet,
        stagingSubnetCidr: flags.subnetCidr,
        routeTableId: flags.routeTable,
        availabilityZone: flags.availabilityZone,
        sourceCidrs: flags.sourceCidr,
        dns: flags.dns,
        ...(flags.resolverSubnet ? { resolverSubnetIds: flags.resolverSubnet } : {}),
      });
      const text = `${JSON.stringify(template, null, 2)}\n`;
      if (flags.checkAgainst) {
        if (flags.output) await writeFile(flags.output, text);
        const report = await previewPlan(template, flags.checkAgainst, region, {
          ...(flags.sourceSubnet
            ? { sourceSubnetId: flags.sourceSubnet }
            : { sourceCidr: flags.sourceCidr[0] ?? "" }),
          ...(flags.sourceGroup ? { sourceGroupIds: flags.sourceGroup } : {}),
          ...(flags.sourceHosts
            ? {
                sourceHosts: await readText(flags.sourceHosts, "--source-hosts"),
                sourceHostsName: flags.sourceHosts,
              }
            : {}),
          region,
        });
        if (flags.json) writeJson(ctx.stdout, toJson(report));
        else ctx.stdout.write(renderTerminal(report));
        if (report.flows.some((f) => !f.ok)) ctx.exitCode = 1;
        return;
      }
      if (flags.output) {
        await writeFile(flags.output, text);
        writeLine(ctx.stderr, `CloudFormation template written to ${flags.output}`);
      } else ctx.stdout.write(text);
    });

  aws
    .command("collect")
    .description("Write the describe-* files ferry aws check reads, with read-only AWS calls")
    .requiredOption("--out <dir>", "directory to write (created if missing)")
    .requiredOption(
      "--vpc <vpc-id>",
      "a VPC to describe (repeatable: the staging VPC and, if in AWS, the source VPC)",
      collectList,
    )
    .option("--region <region>", "the region (default: AWS_REGION or the profile's)")
    .option("--profile <name>", "the AWS profile")
    .option(
      "--source-server <s-id>",
      "also save this source server's replication configuration (repeatable)",
      collectList,
    )
    .option("--endpoint-url <url>", "send every call to this endpoint (testing, or a VPC endpoint)")
    .option("--json", "print the written files as JSON")
    .action(async (flags: CollectFlags) => {
      const written = await collectInventory({
        outDir: flags.out,
        vpcIds: flags.vpc,
        sourceServerIds: flags.sourceServer ?? [],
        ...(flags.region ? { region: flags.region } : {}),
        ...(flags.profile ? { profile: flags.profile } : {}),
        ...(flags.endpointUrl ? { endpointUrl: flags.endpointUrl } : {}),
      });
      if (flags.json) writeJson(ctx.stdout, { out: flags.out, files: written });
      else {
        for (const f of written) writeLine(ctx.stdout, f);
        writeLine(
          ctx.stderr,
          `${written.length} files written to ${flags.out}; next: ferry aws check ${flags.out} --source-cidr <cidr>`,
        );
      }
    });
}

interface PlanFlags {
  stagingVpc: string;
  vpcCidr: string;
  stagingSubnet: string;
  subnetCidr: string;
  routeTable: string;
  availabilityZone: string;
  sourceCidr: string[];
  region?: string;
  dns: string;
  resolverSubnet?: string[];
  stackName: string;
  output?: string;
  checkAgainst?: string;
  sourceSubnet?: string;
  sourceGroup?: string[];
  sourceHosts?: string;
  json?: boolean;
}

interface CollectFlags {
  out: string;
  vpc: string[];
  region?: string;
  profile?: string;
  sourceServer?: string[];
  endpointUrl?: string;
  json?: boolean;
}
