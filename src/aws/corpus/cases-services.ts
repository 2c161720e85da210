/** Misconfigurations of the endpoints, their policies, DNS, the replication template and the input. */
import { ID, IP, SOURCE_CIDR } from "./ids.ts";
import { endpoint, group, list, remove, routes, tcpRule, template } from "./mutate.ts";
import { type FixtureCase, on } from "./case-types.ts";

export const SERVICE_CASES: FixtureCase[] = [
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
