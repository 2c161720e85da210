/**
 * The plan: CDK assertions on the synthesised template, and the plan checked
 * by `ferry aws check` against its own resources deployed into the base
 * network. Synthesises once per DNS mode for the whole file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Match, Template } from "aws-cdk-lib/assertions";
import { ID } from "../corpus/ids.ts";
import { PLAN_PARAMS, planBase } from "../corpus/plan-base.ts";
import { loadInventory } from "../model/loader.ts";
import { checkInventory } from "../eval/check.ts";
import { buildPlanStack, offlineApp, type CfnTemplate } from "./synthesize.ts";
import { deployPlan } from "./to-describe.ts";

const outdir = mkdtempSync(join(tmpdir(), "ferry-plan-test-"));
test.after(() => rmSync(outdir, { recursive: true, force: true }));

function synth(dns: "hosts" | "resolver"): Template {
  const app = offlineApp(join(outdir, dns));
  const { stack } = buildPlanStack(app, { ...PLAN_PARAMS, sourceCidrs: [...PLAN_PARAMS.sourceCidrs], dns });
  return Template.fromStack(stack);
}

const hosts = synth("hosts");
const resolver = synth("resolver");

test("interface endpoints: mgn and ec2 with private DNS, S3 without, all in the staging subnet", () => {
  for (const [service, dns] of [
    ["mgn", true],
    ["ec2", true],
    ["s3", false],
  ] as const) {
    hosts.hasResourceProperties("AWS::EC2::VPCEndpoint", {
      ServiceName: `com.amazonaws.us-east-1.${service}`,
      VpcEndpointType: "Interface",
      PrivateDnsEnabled: dns,
      SubnetIds: [ID.stgSubnet],
      VpcId: ID.stgVpc,
    });
  }
  hosts.resourceCountIs("AWS::EC2::VPCEndpoint", 4);
});

test("the S3 gateway endpoint is on the staging subnet's route table", () => {
  hosts.hasResourceProperties("AWS::EC2::VPCEndpoint", {
    VpcEndpointType: "Gateway",
    RouteTableIds: [ID.stgRtb],
  });
});

test("endpoint group admits 443 from the source CIDR and the replication subnet, not the VPC CIDR", () => {
  const groups = hosts.findResources("AWS::EC2::SecurityGroup", {
    Properties: { GroupDescription: Match.stringLikeRegexp("interface endpoints") },
  });
  const [group] = Object.values(groups) as {
    Properties: { SecurityGroupIngress: { CidrIp: string; FromPort: number }[] };
  }[];
  assert.ok(group);
  assert.deepEqual(group.Properties.SecurityGroupIngress.map((r) => `${r.CidrIp}:${r.FromPort}`).sort(), [
    "10.0.1.0/24:443",
    "10.1.0.0/16:443",
  ]);
  // No VPC-CIDR rule from CDK's `open: true` anywhere.
  hosts.resourcePropertiesCountIs("AWS::EC2::SecurityGroupIngress", { CidrIp: "10.0.0.0/16" }, 0);
});

test("replication group admits 1500 from the source; the template is private with the default group off", () => {
  hosts.hasResourceProperties("AWS::EC2::SecurityGroup", {
    SecurityGroupIngress: [
      Match.objectLike({ CidrIp: "10.1.0.0/16", FromPort: 1500, ToPort: 1500, IpProtocol: "tcp" }),
    ],
  });
  hosts.hasResourceProperties("AWS::MGN::ReplicationConfigurationTemplate", {
    DataPlaneRouting: "PRIVATE_IP",
    CreatePublicIP: false,
    AssociateDefaultSecurityGroup: false,
    StagingAreaSubnetId: ID.stgSubnet,
    ReplicationServersSecurityGroupsIDs: [Match.objectLike({ "Fn::GetAtt": Match.anyValue() })],
  });
});

test("resolver DNS adds an inbound endpoint open on TCP and UDP 53 from the source; hosts DNS does not", () => {
  hosts.resourceCountIs("AWS::Route53Resolver::ResolverEndpoint", 0);
  resolver.hasResourceProperties("AWS::Route53Resolver::ResolverEndpoint", { Direction: "INBOUND" });
  resolver.hasResourceProperties("AWS::EC2::SecurityGroup", {
    SecurityGroupIngress: Match.arrayWith([
      Match.objectLike({ CidrIp: "10.1.0.0/16", FromPort: 53, IpProtocol: "tcp" }),
      Match.objectLike({ CidrIp: "10.1.0.0/16", FromPort: 53, IpProtocol: "udp" }),
    ]),
  });
});

async function checkDeployed(template: CfnTemplate, withHosts: (lines: string[]) => string | undefined) {
  const dir = mkdtempSync(join(outdir, "deployed-"));
  for (const [name, value] of Object.entries(deployPlan(template, planBase(), "us-east-1"))) {
    writeFileSync(join(dir, name), JSON.stringify(value, null, 4));
  }
  const inv = await loadInventory(dir);
  const base = { sourceSubnetId: ID.srcSubnet, sourceGroupIds: [ID.sgSrc] };
  const first = checkInventory(inv, base);
  const text = withHosts(first.derived.hostsLines);
  return { first, report: text === undefined ? first : checkInventory(inv, { ...base, sourceHosts: text }) };
}

test("the plan, deployed into the base network, passes every flow with the hosts lines it derives", async () => {
  const { first, report } = await checkDeployed(
    hosts.toJSON() as CfnTemplate,
    (lines) => `${lines.join("\n")}\n`,
  );
  // Without hosts lines and without a resolver, only name resolution is open to question.
  assert.deepEqual(
    first.flows.filter((f) => !f.ok).map((f) => f.flow),
    ["F3"],
  );
  assert.deepEqual(
    report.flows.filter((f) => !f.ok).map((f) => `${f.flow}: ${JSON.stringify(f.findings)}`),
    [],
  );
  assert.match(
    report.derived.s3Endpoint ?? "",
    /^vpce-0[0-9a-f]{16}-[0-9a-f]{8}\.s3\.us-east-1\.vpce\.amazonaws\.com$/,
  );
  assert.equal(report.derived.hostsLines.length, 2);
});

test("the plan with resolver DNS passes every flow without hosts lines", async () => {
  const { report } = await checkDeployed(resolver.toJSON() as CfnTemplate, () => undefined);
  assert.deepEqual(
    report.flows.filter((f) => !f.ok).map((f) => `${f.flow}: ${JSON.stringify(f.findings)}`),
    [],
  );
});
