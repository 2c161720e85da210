/** The AWS semantics the checker must get right, one rule at a time on the reference inventory. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCidr } from "../model/cidr.ts";
import type { NetworkAcl, VpcEndpoint } from "../model/ec2-shapes.ts";
import { emptyInventory, routeTableOfSubnet, type AwsInventory } from "../model/inventory.ts";
import * as ec2 from "../model/ec2-shapes.ts";
import * as svc from "../model/service-shapes.ts";
import { ID } from "../corpus/ids.ts";
import { referenceSetup } from "../corpus/reference.ts";
import { aclAllows } from "./nacl.ts";
import { lookupRoute } from "./routes.ts";
import { groupsAllow } from "./security-groups.ts";
import { evaluatePath, referenceRule } from "./path.ts";
import { isAvailable, s3EndpointHost } from "./endpoints.ts";
import { policyAllows } from "./policy.ts";
import { parseHosts } from "./dns.ts";

function reference(): AwsInventory {
  const f = referenceSetup();
  const inv = emptyInventory();
  inv.vpcs = ec2.DescribeVpcsResult.parse(f["describe-vpcs.json"]).Vpcs;
  inv.subnets = ec2.DescribeSubnetsResult.parse(f["describe-subnets.json"]).Subnets;
  inv.routeTables = ec2.DescribeRouteTablesResult.parse(f["describe-route-tables.json"]).RouteTables;
  inv.securityGroups = ec2.DescribeSecurityGroupsResult.parse(
    f["describe-security-groups.json"],
  ).SecurityGroups;
  inv.networkAcls = ec2.DescribeNetworkAclsResult.parse(f["describe-network-acls.json"]).NetworkAcls;
  inv.vpcEndpoints = ec2.DescribeVpcEndpointsResult.parse(f["describe-vpc-endpoints.json"]).VpcEndpoints;
  inv.peerings = ec2.DescribeVpcPeeringConnectionsResult.parse(
    f["describe-vpc-peering-connections.json"],
  ).VpcPeeringConnections;
  inv.prefixLists = ec2.DescribePrefixListsResult.parse(f["describe-prefix-lists.json"]).PrefixLists;
  inv.templates = svc.DescribeReplicationConfigurationTemplatesResponse.parse(
    f["describe-replication-configuration-templates.json"],
  ).items;
  return inv;
}

const ctx = (inv: AwsInventory) => ({ inv, region: "us-east-1", notes: [] });

test("a subnet without an explicit association uses the VPC's main table", () => {
  const inv = reference();
  const subnet = inv.subnets.find((s) => s.SubnetId === ID.stgSubnet)!;
  assert.equal(routeTableOfSubnet(inv, subnet)?.table.RouteTableId, ID.stgRtb);
  const t = inv.routeTables.find((r) => r.RouteTableId === ID.stgRtb)!;
  t.Associations = t.Associations?.filter((a) => a.SubnetId !== ID.stgSubnet);
  const rt = routeTableOfSubnet(inv, subnet);
  assert.equal(rt?.table.RouteTableId, ID.stgMainRtb);
  assert.equal(rt?.viaMain, true);
});

test("longest prefix wins, and a blackhole route matches but does not forward", () => {
  const inv = reference();
  const t = inv.routeTables.find((r) => r.RouteTableId === ID.stgRtb)!;
  t.Routes.push({
    DestinationCidrBlock: "10.1.1.0/24",
    VpcPeeringConnectionId: "pcx-0dead",
    State: "blackhole",
  });
  const narrow = lookupRoute(inv, t, parseCidr("10.1.1.7"));
  assert.equal(narrow?.target, "pcx-0dead");
  assert.equal(narrow?.blackhole, true);
  const wide = lookupRoute(inv, t, parseCidr("10.1.2.7"));
  assert.equal(wide?.target, ID.pcx);
  assert.equal(wide?.blackhole, false);
  assert.equal(lookupRoute(inv, t, parseCidr("10.0.2.10"))?.target, "local");
  // Prefix-list routes are expanded: an S3 address goes to the gateway endpoint.
  assert.equal(lookupRoute(inv, t, parseCidr("52.217.1.1"))?.target, ID.vpceS3Gw);
  assert.equal(lookupRoute(inv, t, parseCidr("8.8.8.8")), undefined);
});

test("egress to a prefix list matches S3 by id and by its CIDRs; a VPC-only rule does not", () => {
  const inv = reference();
  const rs = inv.securityGroups.find((g) => g.GroupId === ID.sgReplication)!;
  const s3 = inv.prefixLists!.find((p) => p.PrefixListId === ID.plS3)!;
  const peer = { cidrs: s3.Cidrs.map((c) => parseCidr(c)), groupIds: [], vpcId: null, prefixListId: ID.plS3 };
  const rr = referenceRule(ctx(inv));
  rs.IpPermissionsEgress = [
    { IpProtocol: "tcp", FromPort: 443, ToPort: 443, PrefixListIds: [{ PrefixListId: ID.plS3 }] },
  ];
  assert.ok(groupsAllow(inv, [rs], "egress", "tcp", 443, peer, rr));
  assert.ok(
    groupsAllow(inv, [rs], "egress", "tcp", 443, { ...peer, prefixListId: undefined }, rr),
    "by expanded CIDRs",
  );
  assert.ok(!groupsAllow(inv, [rs], "egress", "tcp", 80, peer, rr));
  rs.IpPermissionsEgress = [
    { IpProtocol: "tcp", FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: "10.0.0.0/16" }] },
  ];
  assert.ok(!groupsAllow(inv, [rs], "egress", "tcp", 443, peer, rr));
  rs.IpPermissionsEgress = [{ IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }] }];
  assert.ok(groupsAllow(inv, [rs], "egress", "udp", 53, peer, rr), "-1 is all traffic, no ports");
});

test("a referenced group matches across an active same-region peering, not inter-region or inactive", () => {
  const inv = reference();
  const ep = inv.securityGroups.find((g) => g.GroupId === ID.sgEndpoints)!;
  ep.IpPermissions = [
    { IpProtocol: "tcp", FromPort: 443, ToPort: 443, UserIdGroupPairs: [{ GroupId: ID.sgSrc }] },
  ];
  const peer = { cidrs: [parseCidr("10.1.1.0/24")], groupIds: [ID.sgSrc], vpcId: ID.srcVpc };
  const allowed = () => {
    const problems: { reason: string }[] = [];
    const ok = groupsAllow(
      inv,
      [ep],
      "ingress",
      "tcp",
      443,
      peer,
      referenceRule(ctx(inv)),
      problems as never[],
    );
    return { ok, problems };
  };
  assert.equal(allowed().ok, true);
  assert.equal(
    groupsAllow(inv, [ep], "ingress", "tcp", 443, { ...peer, groupIds: [] }, referenceRule(ctx(inv))),
    false,
  );
  const pcx = inv.peerings![0]!;
  pcx.RequesterVpcInfo.Region = "eu-west-1";
  assert.deepEqual(
    { ok: allowed().ok, reason: allowed().problems[0]?.reason },
    { ok: false, reason: `${ID.pcx} is inter-region (eu-west-1 ↔ us-east-1)` },
  );
  pcx.RequesterVpcInfo.Region = "us-east-1";
  pcx.Status.Code = "deleted";
  assert.equal(allowed().ok, false);
});

test("network ACL: ascending rule numbers, first match wins, ephemeral range checked interval by interval", () => {
  const acl: NetworkAcl = {
    NetworkAclId: "acl-1",
    VpcId: "vpc-1",
    Entries: [
      { RuleNumber: 200, Protocol: "-1", RuleAction: "allow", Egress: false, CidrBlock: "0.0.0.0/0" },
      {
        RuleNumber: 100,
        Protocol: "6",
        RuleAction: "deny",
        Egress: false,
        CidrBlock: "10.1.0.0/16",
        PortRange: { From: 1500, To: 1500 },
      },
      {
        RuleNumber: 110,
        Protocol: "17",
        RuleAction: "deny",
        Egress: false,
        CidrBlock: "0.0.0.0/0",
        PortRange: { From: 53, To: 53 },
      },
      {
        RuleNumber: 100,
        Protocol: "6",
        RuleAction: "allow",
        Egress: true,
        CidrBlock: "10.1.0.0/16",
        PortRange: { From: 32768, To: 60999 },
      },
      { RuleNumber: 32767, Protocol: "-1", RuleAction: "deny", Egress: true, CidrBlock: "0.0.0.0/0" },
    ],
  };
  const src = parseCidr("10.1.1.0/24");
  assert.deepEqual(aclAllows(acl, false, "tcp", 1500, 1500, src).denied, [
    { from: 1500, to: 1500, ruleNumber: 100 },
  ]);
  assert.deepEqual(aclAllows(acl, false, "tcp", 443, 443, src).denied, []);
  assert.deepEqual(
    aclAllows(acl, false, "tcp", 1500, 1500, parseCidr("10.2.0.0/24")).denied,
    [],
    "deny is for 10.1/16 only",
  );
  assert.deepEqual(aclAllows(acl, false, "tcp", 53, 53, src).denied, [], "the UDP deny does not touch TCP");
  assert.deepEqual(aclAllows(acl, true, "tcp", 1024, 65535, src).denied, [
    { from: 1024, to: 32767, ruleNumber: 32767 },
    { from: 61000, to: 65535, ruleNumber: 32767 },
  ]);
  // An allow that covers only part of the peer's range decides nothing for the rest.
  assert.deepEqual(aclAllows(acl, true, "tcp", 40000, 40000, parseCidr("10.0.0.0/8")).denied, [
    { from: 40000, to: 40000, ruleNumber: 32767 },
  ]);
});

test("endpoint State compares case-insensitively; the S3 host drops the leading *.", () => {
  const ep = { State: "available" } as VpcEndpoint;
  assert.ok(isAvailable(ep));
  assert.ok(isAvailable({ ...ep, State: "Available" }));
  assert.ok(!isAvailable({ ...ep, State: "PendingAcceptance" }));
  const s3 = reference().vpcEndpoints.find((e) => e.VpcEndpointId === ID.vpceS3)!;
  assert.equal(s3EndpointHost(s3), `${ID.vpceS3}-0ddd0000.s3.us-east-1.vpce.amazonaws.com`);
  assert.equal(
    s3EndpointHost({ ...s3, DnsEntries: [{ DnsName: `${ID.vpceS3}-x.s3.us-east-1.vpce.amazonaws.com` }] }),
    undefined,
  );
});

test("endpoint policies: deny wins, wildcards match, no document is full access", () => {
  const bucket = "arn:aws:s3:::aws-mgn-clients-us-east-1/object";
  assert.ok(policyAllows(undefined, "s3:GetObject", bucket).allowed);
  const allowMgn = JSON.stringify({
    Statement: [{ Effect: "Allow", Action: "s3:Get*", Resource: "arn:aws:s3:::aws-mgn-*/*" }],
  });
  assert.ok(policyAllows(allowMgn, "s3:GetObject", bucket).allowed);
  assert.ok(policyAllows(allowMgn, "S3:GETOBJECT", bucket).allowed, "actions are case-insensitive");
  assert.ok(!policyAllows(allowMgn, "s3:GetObject", "arn:aws:s3:::amazon-ssm-us-east-1/object").allowed);
  const withDeny = JSON.stringify({
    Statement: [
      { Effect: "Allow", Action: "*", Resource: "*" },
      { Effect: "Deny", Action: "s3:*", Resource: "arn:aws:s3:::aws-mgn-clients-*" + "/*" },
    ],
  });
  const v = policyAllows(withDeny, "s3:GetObject", bucket);
  assert.equal(v.allowed ? "allowed" : v.reason, "explicit-deny");
  const bad = policyAllows("{not json", "s3:GetObject", bucket);
  assert.equal(bad.allowed ? "allowed" : bad.reason, "invalid");
});

test("hosts lines: comments ignored, first line for a name wins", () => {
  const m = parseHosts(
    "# mgn\n10.0.2.10 mgn.us-east-1.amazonaws.com  # via endpoint\n10.9.9.9 MGN.us-east-1.amazonaws.com\n",
  );
  assert.equal(m.get("mgn.us-east-1.amazonaws.com"), "10.0.2.10");
});

test("network ACLs apply only when a flow crosses a subnet boundary", () => {
  const inv = reference();
  const stg = inv.networkAcls.find((a) => a.NetworkAclId === ID.aclStg)!;
  stg.Entries = stg.Entries.map((e) => ({ ...e, RuleAction: "deny" as const }));
  const group = inv.securityGroups.find((g) => g.GroupId === ID.sgStgDefault)!;
  group.IpPermissions = [{ IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }] }];
  const party = (id: string, subnetId: string, ip: string) => ({
    id,
    vpcId: ID.stgVpc,
    subnetId,
    cidrs: [parseCidr(ip)],
    groups: [group],
  });
  const a = party("eni-a", ID.epSubnet, "10.0.2.50");
  const same = evaluatePath(ctx(inv), {
    rule: "T",
    protocol: "tcp",
    port: 443,
    from: a,
    to: party("eni-b", ID.epSubnet, "10.0.2.51"),
  });
  assert.deepEqual(same, []);
  const across = evaluatePath(ctx(inv), {
    rule: "T",
    protocol: "tcp",
    port: 443,
    from: a,
    to: party("eni-c", ID.stgSubnet, "10.0.1.51"),
  });
  assert.deepEqual(
    across.map((f) => `${f.code} ${f.resources.join(",")}`),
    [
      `SUBNET_ACL_RESTRICTION ${ID.aclStg},${ID.epSubnet}`,
      `SUBNET_ACL_RESTRICTION ${ID.aclStg},${ID.epSubnet}`,
      `SUBNET_ACL_RESTRICTION ${ID.aclStg},${ID.stgSubnet}`,
      `SUBNET_ACL_RESTRICTION ${ID.aclStg},${ID.stgSubnet}`,
    ],
  );
});
