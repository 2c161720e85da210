/**
 * The staging VPC's endpoints: EP-01 (exist, available, private DNS), EP-02
 * (their ENIs and private IPs) and EP-03 (endpoint policies allow what MGN needs).
 */
import { tryParseCidr } from "../model/cidr.ts";
import type { NetworkInterface, SecurityGroup, VpcEndpoint } from "../model/ec2-shapes.ts";
import { findEni, findGroup } from "../model/inventory.ts";
import type { CheckContext } from "./context.ts";
import type { Finding } from "./findings.ts";
import type { Party } from "./path.ts";
import { amendedPolicy, policyAllows } from "./policy.ts";

export type EndpointKind = "mgn" | "ec2" | "s3-interface" | "s3-gateway";

export interface StagingEndpoints {
  mgn: VpcEndpoint | undefined;
  ec2: VpcEndpoint | undefined;
  s3Interface: VpcEndpoint | undefined;
  s3Gateway: VpcEndpoint | undefined;
}

export function serviceName(region: string, service: string): string {
  return `com.amazonaws.${region}.${service}`;
}

/** The model's enum says "Available"; the API answers "available". */
export function isAvailable(ep: VpcEndpoint): boolean {
  return ep.State.toLowerCase() === "available";
}

function pick(ctx: CheckContext, vpcId: string, service: string, type: string): VpcEndpoint | undefined {
  const all = ctx.inv.vpcEndpoints.filter(
    (e) =>
      e.VpcId === vpcId &&
      e.ServiceName === serviceName(ctx.region, service) &&
      e.VpcEndpointType.toLowerCase() === type,
  );
  return all.find(isAvailable) ?? all[0];
}

export function findEndpoints(ctx: CheckContext, vpcId: string): StagingEndpoints {
  return {
    mgn: pick(ctx, vpcId, "mgn", "interface"),
    ec2: pick(ctx, vpcId, "ec2", "interface"),
    s3Interface: pick(ctx, vpcId, "s3", "interface"),
    s3Gateway: pick(ctx, vpcId, "s3", "gateway"),
  };
}

const SERVICE: Record<EndpointKind, string> = {
  mgn: "mgn",
  ec2: "ec2",
  "s3-interface": "s3",
  "s3-gateway": "s3",
};

/** EP-01: the endpoint exists and is available; mgn/ec2 carry private DNS when `needsPrivateDns`. */
export function endpointFindings(
  ctx: CheckContext,
  kind: EndpointKind,
  ep: VpcEndpoint | undefined,
  vpcId: string,
  subnetId: string | undefined,
  needsPrivateDns: boolean,
): Finding[] {
  const name = serviceName(ctx.region, SERVICE[kind]);
  if (!ep) {
    const create =
      kind === "s3-gateway"
        ? `aws ec2 create-vpc-endpoint --vpc-id ${vpcId} --vpc-endpoint-type Gateway --service-name ${name} --route-table-ids <staging subnet's rtb-id>`
        : `aws ec2 create-vpc-endpoint --vpc-id ${vpcId} --vpc-endpoint-type Interface --service-name ${name} --subnet-ids ${subnetId ?? "<staging subnet-id>"} --security-group-ids <endpoint sg-id> ${kind === "s3-interface" ? "--no-private-dns-enabled" : "--private-dns-enabled"}`;
    return [
      {
        rule: "EP-01",
        code: "VPCE_MISSING",
        resources: [vpcId],
        found: `${vpcId} has no ${kind === "s3-gateway" ? "Gateway" : "Interface"} endpoint for ${name}${
          kind === "s3-interface"
            ? " (the source cannot use the gateway endpoint across the peering: no edge-to-edge routing)"
            : ""
        }`,
        fix: create,
      },
    ];
  }
  const out: Finding[] = [];
  if (!isAvailable(ep)) {
    out.push({
      rule: "EP-01",
      code: "VPCE_BAD_STATE",
      resources: [ep.VpcEndpointId],
      found: `${ep.VpcEndpointId} (${name}) is in state ${ep.State}`,
      fix:
        ep.State.toLowerCase() === "pendingacceptance"
          ? `aws ec2 accept-vpc-endpoint-connections --service-id <service-id> --vpc-endpoint-ids ${ep.VpcEndpointId}`
          : `aws ec2 delete-vpc-endpoints --vpc-endpoint-ids ${ep.VpcEndpointId} and create it again (see ferry aws plan)`,
    });
  }
  if (needsPrivateDns && ep.PrivateDnsEnabled !== true) {
    out.push({
      rule: "EP-01",
      code: "VPCE_PRIVATE_DNS_DISABLED",
      resources: [ep.VpcEndpointId],
      found: `${ep.VpcEndpointId} (${name}) has private DNS off: ${SERVICE[kind]}.${ctx.region}.amazonaws.com resolves to public addresses in the staging VPC`,
      fix: `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${ep.VpcEndpointId} --private-dns-enabled`,
    });
  }
  return out;
}

export interface EndpointEnis {
  parties: Party[];
  enis: NetworkInterface[];
  findings: Finding[];
}

function groupsOf(ctx: CheckContext, ids: string[]): SecurityGroup[] {
  const out: SecurityGroup[] = [];
  for (const id of ids) {
    const g = findGroup(ctx.inv, id);
    if (g) out.push(g);
    else
      ctx.notes.push(
        `${id} is attached but not in describe-security-groups.json; its rules were not counted`,
      );
  }
  return out;
}

/** A Party for an ENI of the set: its primary address, subnet and groups. */
export function eniParty(ctx: CheckContext, eni: NetworkInterface): Party {
  const ip = eni.PrivateIpAddress ? tryParseCidr(eni.PrivateIpAddress) : undefined;
  return {
    id: eni.NetworkInterfaceId,
    vpcId: eni.VpcId,
    subnetId: eni.SubnetId,
    cidrs: ip ? [ip] : [],
    groups: groupsOf(
      ctx,
      eni.Groups.map((g) => g.GroupId),
    ),
  };
}

/** EP-02: the endpoint's ENIs, linked through NetworkInterfaceIds (an ENI names no endpoint). */
export function endpointEnis(ctx: CheckContext, ep: VpcEndpoint): EndpointEnis {
  const ids = ep.NetworkInterfaceIds ?? [];
  const enis = ids.map((id) => findEni(ctx.inv, id)).filter((e): e is NetworkInterface => e !== undefined);
  const findings: Finding[] = [];
  const lost = ids.filter((id) => !enis.some((e) => e.NetworkInterfaceId === id));
  if (ids.length === 0 || lost.length > 0) {
    findings.push({
      rule: "EP-02",
      code: "VPCE_ENI_NOT_FOUND",
      resources: [ep.VpcEndpointId, ...lost],
      found:
        ids.length === 0
          ? `${ep.VpcEndpointId} lists no NetworkInterfaceIds: it has no address to reach`
          : `${lost.join(", ")} of ${ep.VpcEndpointId} not in describe-network-interfaces.json`,
      fix:
        ids.length === 0
          ? `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${ep.VpcEndpointId} --add-subnet-ids <staging subnet-id>`
          : `collect describe-network-interfaces.json again with the endpoint's ENIs (ferry aws collect)`,
    });
  }
  return { enis, parties: enis.map((e) => eniParty(ctx, e)), findings };
}

/** The buckets the installer, agent and replication server read (aws-private-network.md). */
export function mgnBuckets(region: string): string[] {
  return [
    `aws-mgn-clients-${region}`,
    `aws-mgn-clients-hashes-${region}`,
    `aws-mgn-internal-${region}`,
    `aws-mgn-internal-hashes-${region}`,
    `aws-application-migration-service-${region}`,
    `aws-application-migration-service-hashes-${region}`,
    `amazon-ssm-${region}`,
  ];
}

/** EP-03: the endpoint policy allows what MGN needs through this endpoint. */
export function policyFindings(ctx: CheckContext, kind: EndpointKind, ep: VpcEndpoint): Finding[] {
  const checks: { action: string; resource: string; label: string }[] =
    kind === "mgn"
      ? [
          {
            action: "execute-api:Invoke",
            resource: `arn:aws:execute-api:${ctx.region}:${ep.OwnerId ?? "111122223333"}:mgn/POST/CreateSessionForMgn`,
            label: "execute-api:Invoke on …/POST/CreateSessionForMgn",
          },
        ]
      : kind === "ec2"
        ? []
        : mgnBuckets(ctx.region).map((b) => ({
            action: "s3:GetObject",
            resource: `arn:aws:s3:::${b}/object`,
            label: b,
          }));
  const denied: string[] = [];
  const denyStatements = [];
  let invalid = false;
  for (const c of checks) {
    const v = policyAllows(ep.PolicyDocument, c.action, c.resource);
    if (v.allowed) continue;
    denied.push(c.label);
    denyStatements.push(...v.statements);
    invalid ||= v.reason === "invalid";
  }
  if (denied.length === 0) return [];
  const extra =
    kind === "mgn"
      ? {
          Effect: "Allow",
          Principal: "*",
          Action: "execute-api:Invoke",
          Resource: `arn:aws:execute-api:${ctx.region}:*:*/POST/CreateSessionForMgn`,
        }
      : {
          Effect: "Allow",
          Principal: "*",
          Action: "s3:GetObject",
          Resource: mgnBuckets(ctx.region).map((b) => `arn:aws:s3:::${b}/*`),
        };
  return [
    {
      rule: "EP-03",
      code: "VPCE_POLICY_DENIES",
      resources: [ep.VpcEndpointId],
      found: invalid
        ? `${ep.VpcEndpointId} PolicyDocument is not a JSON policy`
        : `${ep.VpcEndpointId} policy does not allow ${kind === "mgn" ? denied.join(", ") : `s3:GetObject on ${denied.join(", ")}`}`,
      fix: `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${ep.VpcEndpointId} --policy-document '${amendedPolicy(invalid ? undefined : ep.PolicyDocument, denyStatements, extra)}'`,
    },
  ];
}

/** The S3 interface endpoint's wildcard DNS name without the leading `*.`. */
export function s3EndpointHost(ep: VpcEndpoint): string | undefined {
  const wildcard = (ep.DnsEntries ?? []).find((d) => d.DnsName.startsWith("*."));
  return wildcard?.DnsName.slice(2);
}

/** The endpoint's own regional DNS name (vpce-….<service>.<region>.vpce.amazonaws.com). */
export function endpointDnsName(ep: VpcEndpoint): string | undefined {
  return (ep.DnsEntries ?? []).map((d) => d.DnsName).find((n) => n.startsWith("vpce-"));
}
