/**
 * TPL-01 and the virtual replication server. The replication server does not
 * exist before replication starts, so the checker stands one up from the
 * template (or a per-server configuration, which overrides it): an ENI in
 * stagingAreaSubnetId with the configured groups, plus the group MGN creates
 * when associateDefaultSecurityGroup is on.
 */
import { tryParseCidr } from "../model/cidr.ts";
import type { SecurityGroup } from "../model/ec2-shapes.ts";
import { findGroup, findSubnet } from "../model/inventory.ts";
import type { CheckContext } from "./context.ts";
import type { Finding } from "./findings.ts";
import type { Party } from "./path.ts";

export interface ReplicationSetting {
  /** rct-… for the template, s-… for a per-server configuration. */
  id: string;
  kind: "template" | "server";
  stagingAreaSubnetId: string;
  associateDefaultSecurityGroup: boolean;
  replicationServersSecurityGroupsIDs: string[];
  dataPlaneRouting: string;
  createPublicIP: boolean;
}

/** The group MGN creates and attaches when associateDefaultSecurityGroup is true. */
export const MGN_DEFAULT_GROUP_ID = "mgn-default-replication-group";

function mgnDefaultGroup(vpcId: string): SecurityGroup {
  const any = [{ CidrIp: "0.0.0.0/0" }];
  return {
    GroupId: MGN_DEFAULT_GROUP_ID,
    GroupName: "aws-replication (created by MGN)",
    VpcId: vpcId,
    IpPermissions: [{ IpProtocol: "tcp", FromPort: 1500, ToPort: 1500, IpRanges: any }],
    IpPermissionsEgress: [
      { IpProtocol: "tcp", FromPort: 443, ToPort: 443, IpRanges: any },
      { IpProtocol: "udp", FromPort: 53, ToPort: 53, IpRanges: any },
    ],
  };
}

/** The template(s) and every per-server configuration, in that order. */
export function replicationSettings(ctx: CheckContext): ReplicationSetting[] {
  const fromTemplates = (ctx.inv.templates ?? []).map((t) => ({
    ...t,
    id: t.replicationConfigurationTemplateID,
    kind: "template" as const,
  }));
  const fromServers = ctx.inv.replicationConfigurations.map((c) => ({
    ...c,
    id: c.sourceServerID,
    kind: "server" as const,
  }));
  return [...fromTemplates, ...fromServers].map((s) => ({
    id: s.id,
    kind: s.kind,
    stagingAreaSubnetId: s.stagingAreaSubnetId,
    associateDefaultSecurityGroup: s.associateDefaultSecurityGroup,
    replicationServersSecurityGroupsIDs: s.replicationServersSecurityGroupsIDs,
    dataPlaneRouting: s.dataPlaneRouting,
    createPublicIP: s.createPublicIP,
  }));
}

function update(s: ReplicationSetting, flag: string): string {
  return s.kind === "template"
    ? `aws mgn update-replication-configuration-template --replication-configuration-template-id ${s.id} ${flag}`
    : `aws mgn update-replication-configuration --source-server-id ${s.id} ${flag}`;
}

/** TPL-01 findings for one setting, split by the flows they block. */
export function settingFindings(
  ctx: CheckContext,
  s: ReplicationSetting,
  stagingVpcId: string,
): { dataPlane: Finding[]; placement: Finding[] } {
  const dataPlane: Finding[] = [];
  const placement: Finding[] = [];
  if (s.dataPlaneRouting !== "PRIVATE_IP") {
    dataPlane.push({
      rule: "TPL-01",
      code: "TEMPLATE_PUBLIC_DATA_PLANE",
      resources: [s.id],
      found: `${s.id} has dataPlaneRouting ${s.dataPlaneRouting}: the agent sends data to the replication server's public IP`,
      fix: update(s, "--data-plane-routing PRIVATE_IP"),
    });
  }
  if (s.createPublicIP) {
    dataPlane.push({
      rule: "TPL-01",
      code: "TEMPLATE_CREATE_PUBLIC_IP",
      resources: [s.id],
      found: `${s.id} has createPublicIP true: the replication server expects a public path`,
      fix: update(s, "--no-create-public-ip"),
    });
  }
  const subnet = findSubnet(ctx.inv, s.stagingAreaSubnetId);
  if (!subnet) {
    placement.push({
      rule: "TPL-01",
      code: "TEMPLATE_SUBNET_NOT_FOUND",
      resources: [s.id, s.stagingAreaSubnetId],
      found: `${s.id} stages in ${s.stagingAreaSubnetId}, which is not in describe-subnets.json`,
      fix: update(s, "--staging-area-subnet-id <staging subnet-id>"),
    });
  } else if (subnet.VpcId !== stagingVpcId) {
    placement.push({
      rule: "TPL-01",
      code: "TEMPLATE_SUBNET_OUTSIDE_STAGING_VPC",
      resources: [s.id, s.stagingAreaSubnetId],
      found: `${s.id} stages in ${s.stagingAreaSubnetId} of ${subnet.VpcId}, not in the staging VPC ${stagingVpcId}`,
      fix: update(s, "--staging-area-subnet-id <a subnet of the staging VPC>"),
    });
  }
  for (const id of s.replicationServersSecurityGroupsIDs) {
    const g = findGroup(ctx.inv, id);
    if (!g || g.VpcId !== stagingVpcId) {
      placement.push({
        rule: "TPL-01",
        code: "TEMPLATE_SG_OUTSIDE_STAGING_VPC",
        resources: [s.id, id],
        found: g
          ? `${id} of ${s.id} belongs to ${g.VpcId}, not to the staging VPC ${stagingVpcId}`
          : `${id} of ${s.id} is not in describe-security-groups.json`,
        fix: update(
          s,
          `--replication-servers-security-groups-ids ${s.replicationServersSecurityGroupsIDs
            .filter((x) => x !== id)
            .concat("<sg-id in the staging VPC>")
            .join(" ")}`,
        ),
      });
    }
  }
  return { dataPlane, placement };
}

/** The replication server MGN would launch for this setting, or undefined if it cannot be placed. */
export function virtualReplicationServer(ctx: CheckContext, s: ReplicationSetting): Party | undefined {
  const subnet = findSubnet(ctx.inv, s.stagingAreaSubnetId);
  const cidr = subnet?.CidrBlock ? tryParseCidr(subnet.CidrBlock) : undefined;
  if (!subnet || !cidr) return undefined;
  const groups = s.replicationServersSecurityGroupsIDs
    .map((id) => findGroup(ctx.inv, id))
    .filter((g): g is SecurityGroup => g !== undefined && g.VpcId === subnet.VpcId);
  if (s.associateDefaultSecurityGroup) groups.push(mgnDefaultGroup(subnet.VpcId));
  return {
    id: s.id,
    vpcId: subnet.VpcId,
    subnetId: subnet.SubnetId,
    cidrs: [cidr],
    groups,
  };
}
