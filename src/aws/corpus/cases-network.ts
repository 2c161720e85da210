/** Misconfigurations of the network path: peering, routes, security groups, network ACLs. */
import { ID, SOURCE_CIDR } from "./ids.ts";
import { acl, aclEntry, group, list, routes, routeTable, tcpRule, template } from "./mutate.ts";
import { type FixtureCase, on, OLD_PCX } from "./case-types.ts";

const EP_ACL = "acl-0bbb0000000000083";

export const NETWORK_CASES: FixtureCase[] = [
  {
    name: "peering-pending-acceptance",
    description: "The peering was requested but never accepted.",
    mutate: (f) => {
      list(f, "describe-vpc-peering-connections.json", "VpcPeeringConnections")[0]!.Status = {
        Code: "pending-acceptance",
        Message: `Pending Acceptance by ${ID.account}`,
      };
    },
    expected: on(["F1", "F2", "F7"], "TOPO-01", "VPC_PEERING_CONNECTION_NOT_ACTIVE", [ID.pcx]),
  },
  {
    name: "peering-deleted",
    description:
      "The peering was deleted: it shows as deleted and the routes through it are blackholes on both sides.",
    mutate: (f) => {
      list(f, "describe-vpc-peering-connections.json", "VpcPeeringConnections")[0]!.Status = {
        Code: "deleted",
        Message: `Deleted by ${ID.account}`,
      };
      Object.assign(routes(f, ID.srcRtb)[0]!, { State: "blackhole" });
      Object.assign(routes(f, ID.stgRtb)[0]!, { State: "blackhole" });
    },
    expected: [
      ...on(["F1", "F2", "F7"], "TOPO-01", "VPC_PEERING_CONNECTION_NOT_ACTIVE", [ID.pcx]),
      ...on(["F1", "F2"], "F1/F2", "BAD_STATE_ROUTE", [ID.srcRtb, ID.pcx]),
      ...on(["F1", "F2"], "F1/F2", "BAD_STATE_ROUTE", [ID.stgRtb, ID.pcx]),
      ...on(["F7"], "F7", "BAD_STATE_ROUTE", [ID.srcRtb, ID.pcx]),
      ...on(["F7"], "F7", "BAD_STATE_ROUTE", [ID.stgRtb, ID.pcx]),
    ],
  },
  {
    name: "peering-missing",
    description: "The staging VPC was never peered with the source VPC and no routes exist.",
    mutate: (f) => {
      list(f, "describe-vpc-peering-connections.json", "VpcPeeringConnections").length = 0;
      routes(f, ID.srcRtb).shift();
      routes(f, ID.stgRtb).shift();
    },
    expected: [
      ...on(["F1", "F2", "F7"], "TOPO-01", "VPC_PEERING_CONNECTION_MISSING", [ID.srcVpc, ID.stgVpc]),
      ...on(["F1", "F2"], "F1/F2", "NO_ROUTE_TO_DESTINATION", [ID.srcRtb]),
      ...on(["F1", "F2"], "F1/F2", "NO_ROUTE_TO_DESTINATION", [ID.stgRtb]),
      ...on(["F7"], "F7", "NO_ROUTE_TO_DESTINATION", [ID.srcRtb]),
      ...on(["F7"], "F7", "NO_ROUTE_TO_DESTINATION", [ID.stgRtb]),
    ],
  },
  {
    name: "staging-subnet-main-table",
    description:
      "The staging subnet lost its explicit association and falls back to the main table (local route only).",
    mutate: (f) => {
      const t = routeTable(f, ID.stgRtb);
      t.Associations = (t.Associations as { SubnetId?: string }[]).filter((a) => a.SubnetId !== ID.stgSubnet);
    },
    expected: [
      ...on(["F6"], "F6", "VPCE_GATEWAY_ROUTE_TABLE_NOT_ASSOCIATED", [ID.vpceS3Gw, ID.stgMainRtb]),
      ...on(["F7"], "F7", "NO_ROUTE_TO_DESTINATION", [ID.stgMainRtb]),
    ],
  },
  {
    name: "return-route-blackhole",
    description: "The staging route back to the source still points at a deleted peering: blackhole.",
    mutate: (f) => {
      Object.assign(routes(f, ID.stgRtb)[0]!, { VpcPeeringConnectionId: OLD_PCX, State: "blackhole" });
    },
    expected: [
      ...on(["F1", "F2"], "F1/F2", "BAD_STATE_ROUTE", [ID.stgRtb, OLD_PCX]),
      ...on(["F7"], "F7", "BAD_STATE_ROUTE", [ID.stgRtb, OLD_PCX]),
    ],
  },
  {
    name: "source-route-missing",
    description: "The source subnet's table has no route to the staging VPC.",
    mutate: (f) => {
      routeTable(f, ID.srcRtb).Routes = routes(f, ID.srcRtb).filter((r) => r.GatewayId === "local");
    },
    expected: [
      ...on(["F1", "F2"], "F1/F2", "NO_ROUTE_TO_DESTINATION", [ID.srcRtb]),
      ...on(["F7"], "F7", "NO_ROUTE_TO_DESTINATION", [ID.srcRtb]),
    ],
  },
  {
    name: "endpoint-sg-vpc-cidr-only",
    description:
      "CDK's open:true default: the endpoint group admits 443 from the VPC CIDR only, not the source.",
    mutate: (f) => {
      group(f, ID.sgEndpoints).IpPermissions = [tcpRule(443, 443, "10.0.0.0/16")];
    },
    expected: [
      ...on(["F1"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniS3, ID.sgEndpoints]),
      ...on(["F2"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniMgn, ID.sgEndpoints]),
    ],
  },
  {
    name: "endpoint-sg-no-replication-subnet",
    description: "The endpoint group admits the source but not the replication subnet.",
    mutate: (f) => {
      group(f, ID.sgEndpoints).IpPermissions = [tcpRule(443, 443, SOURCE_CIDR)];
    },
    expected: [
      ...on(["F4"], "F4/F5", "ENI_SG_RULES_MISMATCH", [ID.eniMgn, ID.sgEndpoints]),
      ...on(["F5"], "F4/F5", "ENI_SG_RULES_MISMATCH", [ID.eniEc2, ID.sgEndpoints]),
    ],
  },
  {
    name: "replication-sg-no-1500-from-source",
    description: "The replication group admits 1500 from the staging VPC only.",
    mutate: (f) => {
      group(f, ID.sgReplication).IpPermissions = [tcpRule(1500, 1500, "10.0.0.0/16")];
    },
    expected: on(["F7"], "F7", "ENI_SG_RULES_MISMATCH", [ID.template, ID.sgReplication]),
  },
  {
    name: "source-egress-443-only",
    description: "Source servers may only send HTTPS: the agent cannot open 1500.",
    mutate: (f) => {
      group(f, ID.sgSrc).IpPermissionsEgress = [tcpRule(443, 443, "0.0.0.0/0")];
    },
    expected: on(["F7"], "F7", "ENI_SG_RULES_MISMATCH", [ID.srcSubnet, ID.sgSrc]),
  },
  {
    name: "replication-egress-vpc-only",
    description:
      "Replication servers may send 443 only inside the VPC: S3 through the gateway (prefix list) is cut.",
    mutate: (f) => {
      group(f, ID.sgReplication).IpPermissionsEgress = [tcpRule(443, 443, "10.0.0.0/16")];
    },
    expected: on(["F6"], "F6", "ENI_SG_RULES_MISMATCH", [ID.template, ID.sgReplication]),
  },
  {
    name: "template-no-groups",
    description:
      "The template names no groups and the MGN default group is off: the server has no rules at all.",
    mutate: (f) => {
      Object.assign(template(f), {
        associateDefaultSecurityGroup: false,
        replicationServersSecurityGroupsIDs: [],
      });
    },
    expected: [
      ...on(["F4", "F5"], "F4/F5", "ENI_SG_RULES_MISMATCH", [ID.template]),
      ...on(["F6"], "F6", "ENI_SG_RULES_MISMATCH", [ID.template]),
      ...on(["F7"], "F7", "ENI_SG_RULES_MISMATCH", [ID.template]),
    ],
  },
  {
    name: "nacl-no-ephemeral-return",
    description: "Hardened staging ACL without outbound ephemeral ports to the source: replies are dropped.",
    mutate: (f) => {
      acl(f, ID.aclStg).Entries = [
        aclEntry(false, 100, "allow", "6", SOURCE_CIDR, [443, 443]),
        aclEntry(false, 110, "allow", "6", SOURCE_CIDR, [1500, 1500]),
        aclEntry(false, 120, "allow", "-1", "10.0.0.0/16"),
        aclEntry(false, 130, "allow", "6", "0.0.0.0/0", [1024, 65535]),
        aclEntry(false, 32767, "deny", "-1", "0.0.0.0/0"),
        aclEntry(true, 100, "allow", "6", "0.0.0.0/0", [443, 443]),
        aclEntry(true, 110, "allow", "-1", "10.0.0.0/16"),
        aclEntry(true, 32767, "deny", "-1", "0.0.0.0/0"),
      ];
    },
    expected: [
      ...on(["F1", "F2"], "F1/F2", "SUBNET_ACL_RESTRICTION", [ID.aclStg, ID.epSubnet]),
      ...on(["F7"], "F7", "SUBNET_ACL_RESTRICTION", [ID.aclStg, ID.stgSubnet]),
    ],
  },
  {
    name: "nacl-deny-before-allow",
    description: "Rule 90 denies the source network before rule 100 allows everything: first match wins.",
    mutate: (f) => {
      const entries = acl(f, ID.aclStg).Entries as unknown[];
      entries.unshift(aclEntry(false, 90, "deny", "-1", SOURCE_CIDR));
    },
    expected: [
      ...on(["F1", "F2"], "F1/F2", "SUBNET_ACL_RESTRICTION", [ID.aclStg, ID.epSubnet]),
      ...on(["F7"], "F7", "SUBNET_ACL_RESTRICTION", [ID.aclStg, ID.stgSubnet]),
    ],
  },
  {
    name: "source-nacl-linux-ephemeral-only",
    description: "The source ACL admits replies on 32768-65535 only; the whole 1024-65535 range is needed.",
    mutate: (f) => {
      acl(f, ID.aclSrc).Entries = [
        aclEntry(false, 100, "allow", "-1", SOURCE_CIDR),
        aclEntry(false, 110, "allow", "6", "10.0.0.0/16", [32768, 65535]),
        aclEntry(false, 32767, "deny", "-1", "0.0.0.0/0"),
        aclEntry(true, 100, "allow", "-1", "0.0.0.0/0"),
        aclEntry(true, 32767, "deny", "-1", "0.0.0.0/0"),
      ];
    },
    expected: [
      ...on(["F1", "F2"], "F1/F2", "SUBNET_ACL_RESTRICTION", [ID.aclSrc, ID.srcSubnet]),
      ...on(["F7"], "F7", "SUBNET_ACL_RESTRICTION", [ID.aclSrc, ID.srcSubnet]),
    ],
  },
  {
    name: "group-reference-inter-region",
    description:
      "The source VPC is in another region; the endpoint group references the source group across the peering.",
    mutate: (f) => {
      const p = list(f, "describe-vpc-peering-connections.json", "VpcPeeringConnections")[0]!;
      (p.RequesterVpcInfo as { Region: string }).Region = "us-west-2";
      const s = list(f, "describe-subnets.json", "Subnets").find((x) => x.SubnetId === ID.srcSubnet)!;
      Object.assign(s, { AvailabilityZone: "us-west-2a", AvailabilityZoneId: "usw2-az1" });
      group(f, ID.sgEndpoints).IpPermissions = [
        {
          ...tcpRule(443, 443, "10.0.1.0/24"),
          UserIdGroupPairs: [
            {
              GroupId: ID.sgSrc,
              UserId: ID.account,
              VpcId: ID.srcVpc,
              VpcPeeringConnectionId: ID.pcx,
              PeeringStatus: "active",
            },
          ],
        },
      ];
    },
    expected: [
      ...on(["F1", "F2"], "TOPO-01", "SG_REFERENCE_ACROSS_PEERING_NOT_SUPPORTED", [ID.sgEndpoints, ID.sgSrc]),
      ...on(["F1"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniS3, ID.sgEndpoints]),
      ...on(["F2"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniMgn, ID.sgEndpoints]),
    ],
  },
  {
    name: "onprem-cidr-overlap",
    description: "The on-premises source network overlaps the staging VPC.",
    args: { sourceSubnet: undefined, sourceGroups: undefined, sourceCidr: "10.0.128.0/20" },
    expected: [
      ...on(["F1", "F2", "F7"], "TOPO-01", "VPC_PEERING_CIDR_OVERLAP", ["10.0.128.0/20", ID.stgVpc]),
      ...on(["F1", "F2"], "F1/F2", "NO_ROUTE_TO_DESTINATION", [ID.stgRtb]),
      ...on(["F1"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniS3, ID.sgEndpoints]),
      ...on(["F2"], "F1/F2", "ENI_SG_RULES_MISMATCH", [ID.eniMgn, ID.sgEndpoints]),
      ...on(["F7"], "F7", "NO_ROUTE_TO_DESTINATION", [ID.stgRtb]),
      ...on(["F7"], "F7", "ENI_SG_RULES_MISMATCH", [ID.template, ID.sgReplication]),
    ],
  },
  {
    name: "endpoint-subnet-nacl-source-only",
    description:
      "The endpoint subnet got its own ACL admitting 443 from the source network only: replication servers in the next subnet are cut off.",
    mutate: (f) => {
      const stg = acl(f, ID.aclStg);
      stg.Associations = (stg.Associations as { SubnetId: string }[]).filter(
        (a) => a.SubnetId !== ID.epSubnet,
      );
      list(f, "describe-network-acls.json", "NetworkAcls").push({
        Associations: [
          {
            NetworkAclAssociationId: "aclassoc-0bbb00000000000f1",
            NetworkAclId: EP_ACL,
            SubnetId: ID.epSubnet,
          },
        ],
        Entries: [
          aclEntry(false, 100, "allow", "6", SOURCE_CIDR, [443, 443]),
          aclEntry(false, 32767, "deny", "-1", "0.0.0.0/0"),
          aclEntry(true, 100, "allow", "-1", "0.0.0.0/0"),
          aclEntry(true, 32767, "deny", "-1", "0.0.0.0/0"),
        ],
        IsDefault: false,
        NetworkAclId: EP_ACL,
        Tags: [{ Key: "Name", Value: "mgn-endpoints" }],
        VpcId: ID.stgVpc,
        OwnerId: ID.account,
      });
    },
    expected: on(["F4", "F5"], "F4/F5", "SUBNET_ACL_RESTRICTION", [EP_ACL, ID.epSubnet]),
  },
];
