/**
 * `ferry aws check`: evaluates flows F1–F7 over a loaded inventory and
 * reports every blocker per flow, plus the values the source needs.
 */
import { FerryError } from "../../lib/errors.ts";
import { cidrOverlaps, parseCidr, tryParseCidr, type Cidr } from "../model/cidr.ts";
import type { SecurityGroup } from "../model/ec2-shapes.ts";
import { type AwsInventory, findGroup, findSubnet, findVpc, vpcCidrs } from "../model/inventory.ts";
import { type CheckContext, inputMissing, isActive, peeringNotActive, peeringsBetween } from "./context.ts";
import { dnsFindings, hostsLines } from "./dns.ts";
import {
  endpointDnsName,
  endpointEnis,
  endpointFindings,
  findEndpoints,
  policyFindings,
  s3EndpointHost,
} from "./endpoints.ts";
import { type CheckReport, type Derived, type Finding, FindingSink } from "./findings.ts";
import { evaluatePath, type Party } from "./path.ts";
import { replicationSettings, settingFindings, virtualReplicationServer } from "./replication.ts";
import { s3GatewayFindings } from "./s3-gateway.ts";

export interface CheckOptions {
  /** The source servers' addresses (on-premises, or narrower than --source-subnet). */
  sourceCidr?: string;
  /** The source's subnet when it is itself in a described VPC. */
  sourceSubnetId?: string;
  /** The source servers' security groups (with sourceSubnetId); default: the VPC's default group. */
  sourceGroupIds?: string[];
  /** Content of the source's hosts file, and its name for findings. */
  sourceHosts?: string;
  sourceHostsName?: string;
  /** Overrides the region read from the staging subnet's availability zone. */
  region?: string;
  /** Overrides the staging VPC read from the replication template. */
  stagingVpcId?: string;
}

function sourceParty(inv: AwsInventory, o: CheckOptions, notes: string[]): Party {
  if (!o.sourceSubnetId) {
    if (!o.sourceCidr) {
      throw new FerryError(
        "AWS_NO_SOURCE",
        "no source given; pass --source-cidr <cidr> or --source-subnet <subnet-id>",
      );
    }
    return {
      id: o.sourceCidr,
      vpcId: null,
      subnetId: null,
      cidrs: [parseCidr(o.sourceCidr, "--source-cidr")],
      groups: null,
    };
  }
  const subnet = findSubnet(inv, o.sourceSubnetId);
  if (!subnet) {
    throw new FerryError(
      "AWS_SOURCE_SUBNET_UNKNOWN",
      `--source-subnet ${o.sourceSubnetId} is not in describe-subnets.json; collect the source VPC too (ferry aws collect --vpc <source vpc-id>)`,
    );
  }
  let groups: SecurityGroup[];
  if (o.sourceGroupIds && o.sourceGroupIds.length > 0) {
    groups = o.sourceGroupIds.map((id) => {
      const g = findGroup(inv, id);
      if (!g)
        throw new FerryError(
          "AWS_SOURCE_GROUP_UNKNOWN",
          `--source-group ${id} is not in describe-security-groups.json`,
        );
      return g;
    });
  } else {
    const def = inv.securityGroups.find((g) => g.VpcId === subnet.VpcId && g.GroupName === "default");
    groups = def ? [def] : [];
    notes.push(
      def
        ? `source servers assumed to carry ${def.GroupId} (the default group of ${subnet.VpcId}); pass --source-group to name theirs`
        : `no --source-group and no default group of ${subnet.VpcId}: source egress counted as denied`,
    );
  }
  if (!o.sourceCidr && !subnet.CidrBlock) {
    throw new FerryError(
      "AWS_SOURCE_SUBNET_NO_IPV4",
      `--source-subnet ${subnet.SubnetId} has no IPv4 CIDR; pass --source-cidr with the source servers' addresses`,
    );
  }
  const cidr = parseCidr(
    o.sourceCidr ?? subnet.CidrBlock ?? "",
    o.sourceCidr ? "--source-cidr" : `${subnet.SubnetId} CidrBlock`,
  );
  return { id: subnet.SubnetId, vpcId: subnet.VpcId, subnetId: subnet.SubnetId, cidrs: [cidr], groups };
}

function stagingVpc(inv: AwsInventory, o: CheckOptions): string {
  if (o.stagingVpcId) return o.stagingVpcId;
  for (const t of [...(inv.templates ?? []), ...inv.replicationConfigurations]) {
    const s = findSubnet(inv, t.stagingAreaSubnetId);
    if (s) return s.VpcId;
  }
  const mgn = inv.vpcEndpoints.find((e) => /\.mgn$/.test(e.ServiceName));
  if (mgn) return mgn.VpcId;
  throw new FerryError(
    "AWS_NO_STAGING_VPC",
    "cannot tell the staging VPC: no replication template subnet and no mgn endpoint in the input; pass --staging-vpc <vpc-id>",
  );
}

function regionOf(inv: AwsInventory, o: CheckOptions, vpcId: string): string {
  if (o.region) return o.region;
  const az = inv.subnets.find((s) => s.VpcId === vpcId && s.AvailabilityZone)?.AvailabilityZone;
  if (az) return az.replace(/[a-z]$/, "");
  const ep = inv.vpcEndpoints.find((e) => e.VpcId === vpcId)?.ServiceName.split(".")[2];
  if (ep) return ep;
  throw new FerryError("AWS_NO_REGION", "cannot tell the region from the input; pass --region <region>");
}

/** TOPO-01 between the source and the staging VPC. */
function topologyFindings(ctx: CheckContext, source: Party, vpcId: string): Finding[] {
  const staging = findVpc(ctx.inv, vpcId);
  const stagingCidrs = (staging ? vpcCidrs(staging) : [])
    .map((c) => tryParseCidr(c))
    .filter((c): c is Cidr => !!c);
  const out: Finding[] = [];
  let sourceCidrs = source.cidrs;
  if (source.vpcId && source.vpcId !== vpcId) {
    const src = findVpc(ctx.inv, source.vpcId);
    sourceCidrs = (src ? vpcCidrs(src) : []).map((c) => tryParseCidr(c)).filter((c): c is Cidr => !!c);
    if (ctx.inv.peerings === undefined) {
      out.push(
        inputMissing(
          "TOPO-01",
          "describe-vpc-peering-connections.json",
          "the peering between source and staging",
        ),
      );
    } else {
      const peerings = peeringsBetween(ctx, source.vpcId, vpcId);
      const p = peerings[0];
      if (!p) {
        out.push({
          rule: "TOPO-01",
          code: "VPC_PEERING_CONNECTION_MISSING",
          resources: [source.vpcId, vpcId],
          found: `no peering connection between ${source.vpcId} and ${vpcId}`,
          fix: `aws ec2 create-vpc-peering-connection --vpc-id ${source.vpcId} --peer-vpc-id ${vpcId}, accept it, and add routes both ways`,
        });
      } else if (!isActive(p)) {
        out.push(peeringNotActive(p));
      }
    }
  } else if (source.vpcId === vpcId) {
    return out;
  }
  for (const s of sourceCidrs) {
    const clash = stagingCidrs.find((c) => cidrOverlaps(c, s));
    if (clash) {
      out.push({
        rule: "TOPO-01",
        code: "VPC_PEERING_CIDR_OVERLAP",
        resources: [source.vpcId ?? source.id, vpcId],
        found: `source ${s.text} overlaps the staging VPC's ${clash.text}: traffic to the source stays in the staging VPC`,
        fix: `re-address one side; peering and routing need non-overlapping CIDRs`,
      });
    }
  }
  return out;
}

/** TOPO-02: private DNS inside the staging VPC needs both DNS attributes. */
function vpcDnsFindings(ctx: CheckContext, vpcId: string): Finding[] {
  const attrs = ctx.inv.vpcAttributes.get(vpcId) ?? {};
  const out: Finding[] = [];
  for (const [key, flag, code] of [
    ["enableDnsSupport", "--enable-dns-support", "VPC_DNS_SUPPORT_DISABLED"],
    ["enableDnsHostnames", "--enable-dns-hostnames", "VPC_DNS_HOSTNAMES_DISABLED"],
  ] as const) {
    const value = attrs[key];
    if (value === undefined) {
      out.push(inputMissing("TOPO-02", `describe-vpc-attribute-${vpcId}-${key}.json`, `${key} of ${vpcId}`));
    } else if (!value) {
      out.push({
        rule: "TOPO-02",
        code,
        resources: [vpcId],
        found: `${vpcId} has ${key} false: interface endpoint private DNS does not answer`,
        fix: `aws ec2 modify-vpc-attribute --vpc-id ${vpcId} ${flag} '{"Value":true}'`,
      });
    }
  }
  return out;
}

/** Runs every rule and returns the per-flow result. */
export function checkInventory(inv: AwsInventory, options: CheckOptions): CheckReport {
  const notes: string[] = [];
  const vpcId = stagingVpc(inv, options);
  const region = regionOf(inv, options, vpcId);
  const ctx: CheckContext = { inv, region, notes };
  const source = sourceParty(inv, options, notes);
  const sink = new FindingSink();
  const eps = findEndpoints(ctx, vpcId);
  const settings = replicationSettings(ctx);
  const stagingSubnet = settings.map((s) => s.stagingAreaSubnetId).find((id) => findSubnet(inv, id));

  const topo = topologyFindings(ctx, source, vpcId);
  sink.addAll(["F1", "F2", "F7"], topo);
  const vpcDns = vpcDnsFindings(ctx, vpcId);

  // EP-01/02/03 per endpoint; mgn and ec2 need private DNS only inside the staging VPC.
  const side = (kind: "mgn" | "ec2" | "s3-interface", needsDns: boolean) => {
    const ep = kind === "mgn" ? eps.mgn : kind === "ec2" ? eps.ec2 : eps.s3Interface;
    const findings = endpointFindings(ctx, kind, ep, vpcId, stagingSubnet, needsDns);
    if (!ep) return { findings, enis: [], parties: [] };
    const e = endpointEnis(ctx, ep);
    return {
      findings: [...findings, ...e.findings, ...policyFindings(ctx, kind, ep)],
      enis: e.enis,
      parties: e.parties,
    };
  };
  const s3 = side("s3-interface", false);
  const mgnFromSource = side("mgn", false);
  const mgnInVpc = side("mgn", true);
  const ec2InVpc = side("ec2", true);

  // F1 and F2: the source reaches the interface endpoints' ENIs on 443.
  sink.addAll("F1", s3.findings);
  for (const to of s3.parties)
    sink.addAll("F1", evaluatePath(ctx, { rule: "F1/F2", protocol: "tcp", port: 443, from: source, to }));
  if (eps.s3Interface && !s3EndpointHost(eps.s3Interface)) {
    sink.add("F1", {
      rule: "F1-URL",
      code: "VPCE_NO_WILDCARD_DNS_ENTRY",
      resources: [eps.s3Interface.VpcEndpointId],
      found: `${eps.s3Interface.VpcEndpointId} has no DnsEntries name starting with "*.": the bucket-style installer URL cannot be formed`,
      fix: `check that ${eps.s3Interface.VpcEndpointId} is an Interface endpoint for ${eps.s3Interface.ServiceName} and collect describe-vpc-endpoints.json again`,
    });
  }
  sink.addAll("F2", mgnFromSource.findings);
  for (const to of mgnFromSource.parties)
    sink.addAll("F2", evaluatePath(ctx, { rule: "F1/F2", protocol: "tcp", port: 443, from: source, to }));

  // F3: hosts lines or an inbound resolver.
  if (!eps.mgn)
    sink.addAll(
      "F3",
      mgnFromSource.findings.filter((f) => f.code === "VPCE_MISSING"),
    );
  const dns = dnsFindings(ctx, {
    hostsText: options.sourceHosts,
    hostsFile: options.sourceHostsName ?? "hosts",
    mgnEnis: mgnFromSource.enis,
    ec2Enis: ec2InVpc.enis,
    source,
    stagingVpcId: vpcId,
  });
  sink.addAll("F3", dns.findings);
  if (
    dns.viaResolver &&
    (inv.resolverEndpoints ?? []).some((r) => r.Direction === "INBOUND" && r.HostVPCId === vpcId)
  ) {
    // The resolver answers from the staging VPC's private DNS: it needs the VPC attributes and the endpoint's private DNS.
    sink.addAll("F3", topo);
    sink.addAll("F3", vpcDns);
    sink.addAll(
      "F3",
      mgnInVpc.findings.filter((f) => f.code === "VPCE_PRIVATE_DNS_DISABLED"),
    );
  }

  // F4–F7 from each virtual replication server.
  if (inv.templates === undefined && inv.replicationConfigurations.length === 0) {
    sink.addAll(
      ["F4", "F5", "F6", "F7"],
      [
        inputMissing(
          "TPL-01",
          "describe-replication-configuration-templates.json",
          "the replication server's subnet and groups",
        ),
      ],
    );
  } else if (settings.length === 0) {
    sink.addAll(
      ["F4", "F5", "F6", "F7"],
      [
        {
          rule: "TPL-01",
          code: "TEMPLATE_MISSING",
          resources: [vpcId],
          found:
            "describe-replication-configuration-templates.json lists no template: MGN has not been initialised in this region",
          fix: "initialise MGN (aws mgn initialize-service) and create the template with ferry aws plan",
        },
      ],
    );
  }
  sink.addAll(["F4", "F5"], vpcDns);
  sink.addAll("F4", mgnInVpc.findings);
  sink.addAll("F5", ec2InVpc.findings);
  for (const s of settings) {
    const tpl = settingFindings(ctx, s, vpcId);
    sink.addAll("F7", tpl.dataPlane);
    sink.addAll(["F4", "F5", "F6", "F7"], tpl.placement);
    const server = virtualReplicationServer(ctx, s);
    if (!server) continue;
    for (const to of mgnInVpc.parties)
      sink.addAll("F4", evaluatePath(ctx, { rule: "F4/F5", protocol: "tcp", port: 443, from: server, to }));
    for (const to of ec2InVpc.parties)
      sink.addAll("F5", evaluatePath(ctx, { rule: "F4/F5", protocol: "tcp", port: 443, from: server, to }));
    sink.addAll("F6", s3GatewayFindings(ctx, eps.s3Gateway, server, vpcId));
    sink.addAll(
      "F7",
      evaluatePath(ctx, { rule: "F7", protocol: "tcp", port: 1500, from: source, to: server }),
    );
  }

  const s3Host = eps.s3Interface ? (s3EndpointHost(eps.s3Interface) ?? null) : null;
  const derived: Derived = {
    s3Endpoint: s3Host,
    installerUrl: s3Host
      ? `https://aws-application-migration-service-${region}.bucket.${s3Host}/latest/linux/aws-replication-installer-init.py`
      : null,
    endpoint: eps.mgn ? (endpointDnsName(eps.mgn) ?? null) : null,
    hostsLines: hostsLines(region, mgnFromSource.enis, ec2InVpc.enis),
  };
  const topology = {
    source: source.id,
    mgn: eps.mgn?.VpcEndpointId ?? null,
    ec2: eps.ec2?.VpcEndpointId ?? null,
    s3Interface: eps.s3Interface?.VpcEndpointId ?? null,
    s3Gateway: eps.s3Gateway?.VpcEndpointId ?? null,
    resolver:
      (inv.resolverEndpoints ?? []).find((r) => r.Direction === "INBOUND" && r.HostVPCId === vpcId)?.Id ??
      null,
    replicationServers: settings.map((s) => s.id),
  };
  return {
    region,
    stagingVpcId: vpcId,
    topology,
    flows: sink.results(),
    derived,
    notes: [...new Set(notes)],
  };
}
