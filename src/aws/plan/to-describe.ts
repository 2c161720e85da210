/**
 * Turns a synthesised staging-area template into the describe-* answers AWS
 * would give after deploying it into an existing network: physical ids for
 * the logical ones, ENIs with addresses from the subnet for every interface
 * endpoint, the gateway endpoint's prefix-list route, the resolver's
 * addresses and the MGN template. `ferry aws check` then runs on the result,
 * so the plan is checked by the same rules as a real account.
 */
import { createHash } from "node:crypto";
import { FerryError } from "../../lib/errors.ts";
import { cidrHost, parseCidr } from "../model/cidr.ts";
import type { CfnTemplate } from "./synthesize.ts";

/** File name → AWS CLI JSON, as in a `ferry aws collect` directory. */
export type DescribeFiles = Record<string, unknown>;
type Obj = Record<string, unknown>;

function hex(seed: string, length: number): string {
  return createHash("sha256").update(seed).digest("hex").slice(0, length);
}

const PHYSICAL: Record<string, (logical: string) => string> = {
  "AWS::EC2::SecurityGroup": (l) => `sg-0${hex(l, 16)}`,
  "AWS::EC2::VPCEndpoint": (l) => `vpce-0${hex(l, 16)}`,
  "AWS::Route53Resolver::ResolverEndpoint": (l) => `rslvr-in-${hex(l, 17)}`,
  "AWS::MGN::ReplicationConfigurationTemplate": (l) => `rct-${hex(l, 17)}`,
};

function listOf(files: DescribeFiles, file: string, key: string): Obj[] {
  const doc = (files[file] ??= { [key]: [] }) as Obj;
  if (!Array.isArray(doc[key])) doc[key] = [];
  return doc[key] as Obj[];
}

/** Resolves Ref, Fn::GetAtt and Fn::Join the way CloudFormation would for this template. */
function resolver(template: CfnTemplate, region: string): (v: unknown) => unknown {
  const ids = new Map<string, string>();
  for (const [logical, r] of Object.entries(template.Resources)) {
    const make = PHYSICAL[r.Type];
    if (make) ids.set(logical, make(logical));
  }
  const resolve = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(resolve);
    if (typeof v !== "object" || v === null) return v;
    const o = v as Obj;
    if ("Ref" in o) {
      const ref = String(o.Ref);
      if (ref === "AWS::Region") return region;
      if (ref === "AWS::URLSuffix") return "amazonaws.com";
      const id = ids.get(ref);
      if (!id)
        throw new FerryError("AWS_PLAN_UNRESOLVED", `template Ref ${ref} has no physical id`, {
          kind: "internal",
        });
      return id;
    }
    if ("Fn::GetAtt" in o) {
      const [logical] = o["Fn::GetAtt"] as [string, string];
      const id = ids.get(logical);
      if (!id)
        throw new FerryError("AWS_PLAN_UNRESOLVED", `template Fn::GetAtt ${logical} has no physical id`, {
          kind: "internal",
        });
      return id;
    }
    if ("Fn::Join" in o) {
      const [sep, parts] = o["Fn::Join"] as [string, unknown[]];
      return parts.map((p) => String(resolve(p))).join(sep);
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resolve(x)]));
  };
  return (v) => resolve(v);
}

function permission(rule: Obj): Obj {
  const out: Obj = {
    IpProtocol: String(rule.IpProtocol),
    IpRanges: [],
    Ipv6Ranges: [],
    PrefixListIds: [],
    UserIdGroupPairs: [],
  };
  if (rule.FromPort !== undefined) out.FromPort = rule.FromPort;
  if (rule.ToPort !== undefined) out.ToPort = rule.ToPort;
  if (rule.CidrIp)
    (out.IpRanges as Obj[]).push({
      CidrIp: rule.CidrIp,
      ...(rule.Description ? { Description: rule.Description } : {}),
    });
  const pl = rule.DestinationPrefixListId ?? rule.SourcePrefixListId;
  if (pl) (out.PrefixListIds as Obj[]).push({ PrefixListId: pl });
  const g = rule.SourceSecurityGroupId ?? rule.DestinationSecurityGroupId;
  if (g) (out.UserIdGroupPairs as Obj[]).push({ GroupId: g });
  return out;
}

/** Allocates addresses in a subnet the way the tests can predict: .10 upward, skipping used ones. */
function allocator(files: DescribeFiles): (subnetId: string) => string {
  const used = new Set(
    listOf(files, "describe-network-interfaces.json", "NetworkInterfaces").map((n) =>
      String(n.PrivateIpAddress),
    ),
  );
  return (subnetId) => {
    const subnet = listOf(files, "describe-subnets.json", "Subnets").find((s) => s.SubnetId === subnetId);
    if (!subnet)
      throw new FerryError(
        "AWS_PLAN_SUBNET_UNKNOWN",
        `the plan uses ${subnetId}, which the base network does not have`,
      );
    const cidr = parseCidr(String(subnet.CidrBlock));
    for (let offset = 10; offset < 250; offset++) {
      const ip = cidrHost(cidr, offset);
      if (!used.has(ip)) {
        used.add(ip);
        return ip;
      }
    }
    throw new FerryError("AWS_PLAN_SUBNET_FULL", `${subnetId} has no free address for the plan`);
  };
}

/** Applies `template` to a copy of `base` (the existing network) and returns the describe-* files. */
export function deployPlan(
  template: CfnTemplate,
  base: DescribeFiles,
  region: string,
  account = "111122223333",
): DescribeFiles {
  const files = structuredClone(base);
  const resolve = resolver(template, region);
  const allocate = allocator(files);
  const resources = Object.entries(template.Resources).map(([logical, r]) => ({
    logical,
    type: r.Type,
    props: resolve(r.Properties ?? {}) as Obj,
    id: PHYSICAL[r.Type]?.(logical) ?? logical,
  }));
  const groups = listOf(files, "describe-security-groups.json", "SecurityGroups");
  for (const r of resources.filter((x) => x.type === "AWS::EC2::SecurityGroup")) {
    const egress = (r.props.SecurityGroupEgress as Obj[] | undefined) ?? [
      { IpProtocol: "-1", CidrIp: "0.0.0.0/0" },
    ];
    groups.push({
      Description: r.props.GroupDescription,
      GroupName: `${r.logical.slice(0, 40)}-${r.id.slice(3, 11)}`,
      IpPermissions: ((r.props.SecurityGroupIngress as Obj[] | undefined) ?? []).map(permission),
      OwnerId: account,
      GroupId: r.id,
      IpPermissionsEgress: egress.map(permission),
      Tags: [],
      VpcId: r.props.VpcId,
    });
  }
  for (const r of resources.filter(
    (x) => x.type === "AWS::EC2::SecurityGroupIngress" || x.type === "AWS::EC2::SecurityGroupEgress",
  )) {
    const g = groups.find((x) => x.GroupId === r.props.GroupId);
    if (g)
      ((r.type.endsWith("Ingress") ? g.IpPermissions : g.IpPermissionsEgress) as Obj[]).push(
        permission(r.props),
      );
  }
  const prefixLists = listOf(files, "describe-prefix-lists.json", "PrefixLists");
  for (const r of resources.filter((x) => x.type === "AWS::EC2::VPCEndpoint")) {
    const service = String(r.props.ServiceName);
    const short = service.split(".").slice(3).join(".");
    const type = String(r.props.VpcEndpointType ?? "Gateway");
    const enis: string[] = [];
    const dns: Obj[] = [];
    if (type === "Interface") {
      for (const subnetId of (r.props.SubnetIds as string[] | undefined) ?? []) {
        const eni = `eni-0${hex(`${r.id}/${subnetId}`, 16)}`;
        const ip = allocate(subnetId);
        enis.push(eni);
        listOf(files, "describe-network-interfaces.json", "NetworkInterfaces").push({
          Description: `VPC Endpoint Interface ${r.id}`,
          Groups: ((r.props.SecurityGroupIds as string[] | undefined) ?? []).map((GroupId) => ({ GroupId })),
          InterfaceType: "vpc_endpoint",
          NetworkInterfaceId: eni,
          OwnerId: account,
          PrivateIpAddress: ip,
          PrivateIpAddresses: [{ Primary: true, PrivateIpAddress: ip }],
          RequesterManaged: true,
          Status: "in-use",
          SubnetId: subnetId,
          VpcId: r.props.VpcId,
        });
      }
      const regional = `${r.id}-${hex(r.id, 8)}.${short}.${region}.vpce.amazonaws.com`;
      dns.push({ DnsName: short === "s3" ? `*.${regional}` : regional, HostedZoneId: "Z7HUB22UULQXV" });
      if (r.props.PrivateDnsEnabled === true)
        dns.push({ DnsName: `${short}.${region}.amazonaws.com`, HostedZoneId: "ZONEIDPENDING" });
    } else {
      const pl = prefixLists.find((p) => p.PrefixListName === service);
      for (const tableId of (r.props.RouteTableIds as string[] | undefined) ?? []) {
        const table = listOf(files, "describe-route-tables.json", "RouteTables").find(
          (t) => t.RouteTableId === tableId,
        );
        if (table && pl) {
          (table.Routes as Obj[]).push({
            DestinationPrefixListId: pl.PrefixListId,
            GatewayId: r.id,
            Origin: "CreateRoute",
            State: "active",
          });
        }
      }
    }
    listOf(files, "describe-vpc-endpoints.json", "VpcEndpoints").push({
      VpcEndpointId: r.id,
      VpcEndpointType: type,
      VpcId: r.props.VpcId,
      ServiceName: service,
      State: "available",
      ...(r.props.PolicyDocument ? { PolicyDocument: JSON.stringify(r.props.PolicyDocument) } : {}),
      RouteTableIds: r.props.RouteTableIds ?? [],
      SubnetIds: r.props.SubnetIds ?? [],
      Groups: ((r.props.SecurityGroupIds as string[] | undefined) ?? []).map((GroupId) => ({ GroupId })),
      PrivateDnsEnabled: r.props.PrivateDnsEnabled === true,
      RequesterManaged: false,
      NetworkInterfaceIds: enis,
      DnsEntries: dns,
      OwnerId: account,
    });
  }
  for (const r of resources.filter((x) => x.type === "AWS::Route53Resolver::ResolverEndpoint")) {
    const addresses = (r.props.IpAddresses as { SubnetId: string; Ip?: string }[]).map((a, i) => ({
      IpId: `rni-0${hex(`${r.id}/${i}`, 16)}`,
      SubnetId: a.SubnetId,
      Ip: a.Ip ?? allocate(a.SubnetId),
      Status: "ATTACHED",
    }));
    const subnet = listOf(files, "describe-subnets.json", "Subnets").find(
      (s) => s.SubnetId === addresses[0]?.SubnetId,
    );
    listOf(files, "list-resolver-endpoints.json", "ResolverEndpoints").push({
      Id: r.id,
      Name: r.props.Name,
      SecurityGroupIds: r.props.SecurityGroupIds,
      Direction: r.props.Direction,
      IpAddressCount: addresses.length,
      HostVPCId: subnet?.VpcId,
      Status: "OPERATIONAL",
    });
    files[`list-resolver-endpoint-ip-addresses-${r.id}.json`] = { IpAddresses: addresses };
  }
  for (const r of resources.filter((x) => x.type === "AWS::MGN::ReplicationConfigurationTemplate")) {
    const p = r.props;
    listOf(files, "describe-replication-configuration-templates.json", "items").push({
      replicationConfigurationTemplateID: r.id,
      arn: `arn:aws:mgn:${region}:${account}:replication-configuration-template/${r.id}`,
      stagingAreaSubnetId: p.StagingAreaSubnetId,
      associateDefaultSecurityGroup: p.AssociateDefaultSecurityGroup,
      replicationServersSecurityGroupsIDs: p.ReplicationServersSecurityGroupsIDs,
      replicationServerInstanceType: p.ReplicationServerInstanceType,
      useDedicatedReplicationServer: p.UseDedicatedReplicationServer,
      defaultLargeStagingDiskType: p.DefaultLargeStagingDiskType,
      ebsEncryption: p.EbsEncryption,
      bandwidthThrottling: p.BandwidthThrottling,
      dataPlaneRouting: p.DataPlaneRouting,
      createPublicIP: p.CreatePublicIP,
      stagingAreaTags: p.StagingAreaTags ?? {},
    });
  }
  return files;
}
