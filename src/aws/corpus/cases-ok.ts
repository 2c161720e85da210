/** Fixture cases where every flow passes: the reference and variants that exercise a semantic. */
import { ID, SOURCE_CIDR } from "./ids.ts";
import { acl, aclEntry, group, list, tcpRule, template } from "./mutate.ts";
import type { FixtureCase } from "./case-types.ts";

export const OK_CASES: FixtureCase[] = [
  { name: "reference", description: "The reference setup done right: every flow passes.", expected: [] },
  {
    name: "ok-resolver-dns",
    description:
      "No hosts lines: the source resolves through the inbound resolver endpoint (TCP+UDP 53 open).",
    args: { noHosts: true },
    expected: [],
  },
  {
    name: "ok-uppercase-state",
    description: "Endpoint State as the botocore model spells it (Available): compared case-insensitively.",
    mutate: (f) =>
      list(f, "describe-vpc-endpoints.json", "VpcEndpoints").forEach((e) => (e.State = "Available")),
    expected: [],
  },
  {
    name: "ok-prefix-list-egress",
    description: "Replication servers may send 443 only to the S3 prefix list and the endpoint subnet.",
    mutate: (f) => {
      group(f, ID.sgReplication).IpPermissionsEgress = [
        { ...tcpRule(443, 443, "10.0.2.0/24"), PrefixListIds: [{ PrefixListId: ID.plS3 }] },
      ];
    },
    expected: [],
  },
  {
    name: "ok-mgn-default-group",
    description: "No groups of our own; MGN's default replication group (1500 in, 443/53 out) is associated.",
    mutate: (f) => {
      Object.assign(template(f), {
        associateDefaultSecurityGroup: true,
        replicationServersSecurityGroupsIDs: [],
      });
    },
    expected: [],
  },
  {
    name: "ok-group-reference-peering",
    description:
      "The endpoint group admits the source servers by group reference across a same-region peering.",
    mutate: (f) => {
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
    expected: [],
  },
  {
    name: "ok-onprem-source-cidr",
    description: "The source is on premises, known only by --source-cidr; the staging side is checked.",
    args: { sourceSubnet: undefined, sourceGroups: undefined, sourceCidr: SOURCE_CIDR },
    expected: [],
  },
  {
    name: "ok-nacl-ephemeral",
    description:
      "Locked-down staging ACL that still opens 443/1500 in and the full ephemeral range out to the source.",
    mutate: (f) => {
      acl(f, ID.aclStg).Entries = [
        aclEntry(false, 100, "allow", "6", SOURCE_CIDR, [443, 443]),
        aclEntry(false, 110, "allow", "6", SOURCE_CIDR, [1500, 1500]),
        aclEntry(false, 120, "allow", "-1", "10.0.0.0/16"),
        aclEntry(false, 130, "allow", "6", "0.0.0.0/0", [1024, 65535]),
        aclEntry(false, 32767, "deny", "-1", "0.0.0.0/0"),
        aclEntry(true, 100, "allow", "6", "0.0.0.0/0", [443, 443]),
        aclEntry(true, 110, "allow", "-1", "10.0.0.0/16"),
        aclEntry(true, 120, "allow", "6", SOURCE_CIDR, [1024, 65535]),
        aclEntry(true, 32767, "deny", "-1", "0.0.0.0/0"),
      ];
    },
    expected: [],
  },
];
