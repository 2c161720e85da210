/**
 * The fixture corpus: the reference setup and realistic misconfigurations,
 * each as a mutation of a fresh reference copy with the exact findings it
 * must produce (written by hand from the AWS semantics, not from the checker).
 */
import { ID, IP, SOURCE_CIDR } from "./ids.ts";
import {
  acl,
  aclEntry,
  endpoint,
  group,
  list,
  remove,
  routes,
  routeTable,
  tcpRule,
  template,
} from "./mutate.ts";
import { type FixtureFiles, REFERENCE_HOSTS } from "./reference.ts";

/** The source side of a case: what `ferry aws check` gets as flags. */
export interface CaseArgs {
  sourceSubnet?: string;
  sourceCidr?: string;
  sourceGroups?: string[];
  /** Name of the hosts file inside the case directory. */
  sourceHosts?: string;
}

export interface ExpectedFinding {
  flow: string;
  rule: string;
  code: string;
  resources: string[];
}

export interface FixtureCase {
  name: string;
  description: string;
  mutate?: (files: FixtureFiles) => void;
  args?: Partial<CaseArgs> & { noHosts?: boolean };
  hosts?: string;
  expected: ExpectedFinding[];
}

export const DEFAULT_ARGS: CaseArgs = {
  sourceSubnet: ID.srcSubnet,
  sourceGroups: [ID.sgSrc],
  sourceHosts: "source-hosts",
};

const on = (flows: string[], rule: string, code: string, resources: string[]): ExpectedFinding[] =>
  flows.map((flow) => ({ flow, rule, code, resources }));

const OLD_PCX = "pcx-0ccc0000000000050";

export const CASES: FixtureCase[] = [
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
    name: "mgn-endpoint-missing",
    description: "No mgn interface endpoint in the staging VPC.",
    mutate: (f) => {
      remove(f, "describe-vpc-endpoints.json", "VpcEndpoints", "VpcEndpointId", ID.vpceMgn);
      remove(f, "describe-network-interfaces.json", "NetworkInterfaces", "NetworkInterfaceId", ID.eniMgn);
    },
    expected: on(["F2", "F3", "F4"], "EP-01", "VPCE_MISSING", [ID.stgVpc]),
  },
  {
    name: "mgn-private-dns-off",
    description: "The mgn endpoint has private DNS off: the replication server resolves the public name.",
    mutate: (f) => {
      const e = endpoint(f, ID.vpceMgn);
      e.PrivateDnsEnabled = false;
      e.DnsEntries = (e.DnsEntries as { DnsName: string }[]).filter((d) => d.DnsName.startsWith("vpce-"));
    },
    expected: on(["F4"], "EP-01", "VPCE_PRIVATE_DNS_DISABLED", [ID.vpceMgn]),
  },
  {
    name: "ec2-endpoint-pending",
    description: "The ec2 endpoint is still pending.",
    mutate: (f) => {
      endpoint(f, ID.vpceEc2).State = "pending";
    },
    expected: on(["F5"], "EP-01", "VPCE_BAD_STATE", [ID.vpceEc2]),
  },
  {
    name: "s3-gateway-wrong-route-table",
    description: "The S3 gateway endpoint is on the main table; the staging subnet uses its own table.",
    mutate: (f) => {
      endpoint(f, ID.vpceS3Gw).RouteTableIds = [ID.stgMainRtb];
      const moved = routes(f, ID.stgRtb).pop();
      routes(f, ID.stgMainRtb).push(moved as object as Record<string, unknown>);
    },
    expected: on(["F6"], "F6", "VPCE_GATEWAY_ROUTE_TABLE_NOT_ASSOCIATED", [ID.vpceS3Gw, ID.stgRtb]),
  },
  {
    name: "s3-gateway-missing",
    description: "Only the S3 interface endpoint exists; the replication server has no gateway path to S3.",
    mutate: (f) => {
      remove(f, "describe-vpc-endpoints.json", "VpcEndpoints", "VpcEndpointId", ID.vpceS3Gw);
      routes(f, ID.stgRtb).pop();
    },
    expected: on(["F6"], "EP-01", "VPCE_MISSING", [ID.stgVpc]),
  },
  {
    name: "s3-interface-endpoint-missing",
    description:
      "No S3 interface endpoint: the source cannot download the installer (no edge-to-edge routing to the gateway).",
    mutate: (f) => {
      remove(f, "describe-vpc-endpoints.json", "VpcEndpoints", "VpcEndpointId", ID.vpceS3);
      remove(f, "describe-network-interfaces.json", "NetworkInterfaces", "NetworkInterfaceId", ID.eniS3);
    },
    expected: on(["F1"], "EP-01", "VPCE_MISSING", [ID.stgVpc]),
  },
  {
    name: "s3-gateway-policy-own-bucket",
    description: "The gateway endpoint policy allows only the company's own bucket.",
    mutate: (f) => {
      endpoint(f, ID.vpceS3Gw).PolicyDocument = JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: "*",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: "arn:aws:s3:::example-corp-artifacts/*",
          },
        ],
      });
    },
    expected: on(["F6"], "EP-03", "VPCE_POLICY_DENIES", [ID.vpceS3Gw]),
  },
  {
    name: "mgn-policy-no-create-session",
    description: "The mgn endpoint policy allows mgn:* but not execute-api:Invoke on CreateSessionForMgn.",
    mutate: (f) => {
      endpoint(f, ID.vpceMgn).PolicyDocument = JSON.stringify({
        Statement: [{ Effect: "Allow", Principal: "*", Action: "mgn:*", Resource: "*" }],
      });
    },
    expected: on(["F2", "F4"], "EP-03", "VPCE_POLICY_DENIES", [ID.vpceMgn]),
  },
  {
    name: "template-console-defaults",
    description: "The template still has the console defaults: public data plane and a public IP.",
    mutate: (f) => {
      Object.assign(template(f), { dataPlaneRouting: "PUBLIC_IP", createPublicIP: true });
    },
    expected: [
      ...on(["F7"], "TPL-01", "TEMPLATE_PUBLIC_DATA_PLANE", [ID.template]),
      ...on(["F7"], "TPL-01", "TEMPLATE_CREATE_PUBLIC_IP", [ID.template]),
    ],
  },
  {
    name: "server-overrides-template",
    description:
      "The template is right but one source server's own configuration routes the data plane publicly.",
    mutate: (f) => {
      f["get-replication-configuration-s-1234567890abcdef0.json"] = {
        sourceServerID: "s-1234567890abcdef0",
        name: "db01",
        stagingAreaSubnetId: ID.stgSubnet,
        associateDefaultSecurityGroup: false,
        replicationServersSecurityGroupsIDs: [ID.sgReplication],
        replicationServerInstanceType: "t3.small",
        useDedicatedReplicationServer: false,
        defaultLargeStagingDiskType: "GP3",
        replicatedDisks: [{ deviceName: "/dev/sda", isBootDisk: true, stagingDiskType: "AUTO" }],
        ebsEncryption: "DEFAULT",
        bandwidthThrottling: 0,
        dataPlaneRouting: "PUBLIC_IP",
        createPublicIP: false,
        stagingAreaTags: {},
        useFipsEndpoint: false,
        internetProtocol: "IPV4",
      };
    },
    expected: on(["F7"], "TPL-01", "TEMPLATE_PUBLIC_DATA_PLANE", ["s-1234567890abcdef0"]),
  },
  {
    name: "staging-dns-hostnames-off",
    description: "The staging VPC has DNS hostnames off: endpoint private DNS does not answer inside it.",
    mutate: (f) => {
      f[`describe-vpc-attribute-${ID.stgVpc}-enableDnsHostnames.json`] = {
        VpcId: ID.stgVpc,
        EnableDnsHostnames: { Value: false },
      };
    },
    expected: on(["F4", "F5"], "TOPO-02", "VPC_DNS_HOSTNAMES_DISABLED", [ID.stgVpc]),
  },
  {
    name: "hosts-wrong-address",
    description: "The source's hosts file maps the mgn name to an old endpoint address.",
    hosts: `10.0.2.99 mgn.${ID.region}.amazonaws.com\n${IP.ec2} ec2.${ID.region}.amazonaws.com\n`,
    expected: on(["F3"], "F3-DNS", "DNS_HOSTS_WRONG_ADDRESS", ["source-hosts", ID.eniMgn]),
  },
  {
    name: "hosts-missing-mgn-line",
    description: "The source's hosts file maps only the ec2 name; the mgn name resolves publicly.",
    hosts: `127.0.0.1 localhost\n${IP.ec2} ec2.${ID.region}.amazonaws.com\n`,
    expected: on(["F3"], "F3-DNS", "DNS_HOSTS_LINE_MISSING", ["source-hosts"]),
  },
  {
    name: "resolver-action-needed",
    description: "No hosts lines; the inbound resolver endpoint needs action (an address failed).",
    args: { noHosts: true },
    mutate: (f) => {
      Object.assign(list(f, "list-resolver-endpoints.json", "ResolverEndpoints")[0]!, {
        Status: "ACTION_NEEDED",
        StatusMessage: "[Trace id: 1-6543] One or more IP addresses could not be attached.",
      });
    },
    expected: on(["F3"], "F3-DNS", "RESOLVER_ENDPOINT_NOT_OPERATIONAL", [ID.resolver]),
  },
  {
    name: "no-dns-path",
    description: "No hosts lines and no inbound resolver: the source resolves the public name.",
    args: { noHosts: true },
    mutate: (f) => {
      list(f, "list-resolver-endpoints.json", "ResolverEndpoints").length = 0;
      delete f[`list-resolver-endpoint-ip-addresses-${ID.resolver}.json`];
    },
    expected: on(["F3"], "F3-DNS", "DNS_NO_RESOLUTION_PATH", [ID.stgVpc]),
  },
  {
    name: "resolver-sg-tcp-only",
    description: "The inbound resolver's group admits TCP 53 but not UDP 53.",
    args: { noHosts: true },
    mutate: (f) => {
      group(f, ID.sgResolver).IpPermissions = [tcpRule(53, 53, SOURCE_CIDR)];
    },
    expected: on(["F3"], "F3-DNS", "ENI_SG_RULES_MISMATCH", [ID.resolver, ID.sgResolver]),
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
    name: "vpc-attribute-files-missing",
    description: "describe-vpc-attribute was not collected for the staging VPC: reported, not guessed.",
    mutate: (f) => {
      delete f[`describe-vpc-attribute-${ID.stgVpc}-enableDnsSupport.json`];
      delete f[`describe-vpc-attribute-${ID.stgVpc}-enableDnsHostnames.json`];
    },
    expected: [
      ...on(["F4", "F5"], "TOPO-02", "INPUT_MISSING", [
        `describe-vpc-attribute-${ID.stgVpc}-enableDnsSupport.json`,
      ]),
      ...on(["F4", "F5"], "TOPO-02", "INPUT_MISSING", [
        `describe-vpc-attribute-${ID.stgVpc}-enableDnsHostnames.json`,
      ]),
    ],
  },
  {
    name: "endpoint-eni-not-collected",
    description:
      "The mgn endpoint's ENI is missing from describe-network-interfaces (collected with a subnet filter).",
    mutate: (f) => {
      remove(f, "describe-network-interfaces.json", "NetworkInterfaces", "NetworkInterfaceId", ID.eniMgn);
    },
    expected: on(["F2", "F4"], "EP-02", "VPCE_ENI_NOT_FOUND", [ID.vpceMgn, ID.eniMgn]),
  },
];

export { REFERENCE_HOSTS };
