/**
 * The reference setup done right, as the AWS CLI prints it: a source VPC
 * (standing in for the source network) peered with a staging VPC that has the
 * mgn, ec2 and S3 interface endpoints, the S3 gateway endpoint, an inbound
 * resolver and the MGN replication template. The corpus derives every
 * misconfiguration from a fresh copy of this.
 */
import { ID, IP, SOURCE_CIDR, STAGING_CIDR } from "./ids.ts";

/** File name → parsed JSON, one entry per AWS CLI command output. */
export type FixtureFiles = Record<string, unknown>;

const R = ID.region;
const tags = (name: string) => [{ Key: "Name", Value: name }];
const allTraffic = (cidr: string) => ({
  IpProtocol: "-1",
  IpRanges: [{ CidrIp: cidr }],
  Ipv6Ranges: [],
  PrefixListIds: [],
  UserIdGroupPairs: [],
});
const tcp = (port: number, cidrs: { CidrIp: string; Description?: string }[]) => ({
  FromPort: port,
  IpProtocol: "tcp",
  IpRanges: cidrs,
  Ipv6Ranges: [],
  PrefixListIds: [],
  ToPort: port,
  UserIdGroupPairs: [],
});

function vpc(id: string, cidr: string, name: string) {
  return {
    CidrBlock: cidr,
    DhcpOptionsId: "dopt-0aaa00000000000d1",
    State: "available",
    VpcId: id,
    OwnerId: ID.account,
    InstanceTenancy: "default",
    CidrBlockAssociationSet: [
      {
        AssociationId: `vpc-cidr-assoc-${id.slice(4)}`,
        CidrBlock: cidr,
        CidrBlockState: { State: "associated" },
      },
    ],
    IsDefault: false,
    Tags: tags(name),
  };
}

function subnet(id: string, vpcId: string, cidr: string, name: string) {
  return {
    AvailabilityZone: `${R}a`,
    AvailabilityZoneId: "use1-az1",
    AvailableIpAddressCount: 250,
    CidrBlock: cidr,
    DefaultForAz: false,
    MapPublicIpOnLaunch: false,
    State: "available",
    SubnetId: id,
    VpcId: vpcId,
    OwnerId: ID.account,
    AssignIpv6AddressOnCreation: false,
    Ipv6CidrBlockAssociationSet: [],
    Tags: tags(name),
    SubnetArn: `arn:aws:ec2:${R}:${ID.account}:subnet/${id}`,
    EnableDns64: false,
    Ipv6Native: false,
    PrivateDnsNameOptionsOnLaunch: {
      HostnameType: "ip-name",
      EnableResourceNameDnsARecord: false,
      EnableResourceNameDnsAAAARecord: false,
    },
  };
}

const local = (cidr: string) => ({
  DestinationCidrBlock: cidr,
  GatewayId: "local",
  Origin: "CreateRouteTable",
  State: "active",
});
const viaPeering = (cidr: string) => ({
  DestinationCidrBlock: cidr,
  Origin: "CreateRoute",
  State: "active",
  VpcPeeringConnectionId: ID.pcx,
});

function routeTable(id: string, vpcId: string, routes: unknown[], subnets: string[], main: boolean) {
  const associations: unknown[] = subnets.map((s, i) => ({
    Main: false,
    RouteTableAssociationId: `rtbassoc-0${id.slice(5, 20)}${i}`,
    RouteTableId: id,
    SubnetId: s,
    AssociationState: { State: "associated" },
  }));
  if (main) {
    associations.push({
      Main: true,
      RouteTableAssociationId: `rtbassoc-0${id.slice(5, 20)}m`,
      RouteTableId: id,
      AssociationState: { State: "associated" },
    });
  }
  return {
    Associations: associations,
    PropagatingVgws: [],
    RouteTableId: id,
    Routes: routes,
    Tags: [],
    VpcId: vpcId,
    OwnerId: ID.account,
  };
}

function group(id: string, vpcId: string, name: string, ingress: unknown[], egress: unknown[]) {
  return {
    Description: name === "default" ? "default VPC security group" : name,
    GroupName: name,
    IpPermissions: ingress,
    OwnerId: ID.account,
    GroupId: id,
    IpPermissionsEgress: egress,
    Tags: [],
    VpcId: vpcId,
    SecurityGroupArn: `arn:aws:ec2:${R}:${ID.account}:security-group/${id}`,
  };
}

const defaultGroupRules = (id: string) => [
  {
    IpProtocol: "-1",
    IpRanges: [],
    Ipv6Ranges: [],
    PrefixListIds: [],
    UserIdGroupPairs: [{ GroupId: id, UserId: ID.account }],
  },
];

function acl(id: string, vpcId: string, subnets: string[]) {
  const entry = (egress: boolean, ruleNumber: number, action: string) => ({
    CidrBlock: "0.0.0.0/0",
    Egress: egress,
    Protocol: "-1",
    RuleAction: action,
    RuleNumber: ruleNumber,
  });
  return {
    Associations: subnets.map((s, i) => ({
      NetworkAclAssociationId: `aclassoc-0${id.slice(5, 20)}${i}`,
      NetworkAclId: id,
      SubnetId: s,
    })),
    Entries: [
      entry(true, 100, "allow"),
      entry(true, 32767, "deny"),
      entry(false, 100, "allow"),
      entry(false, 32767, "deny"),
    ],
    IsDefault: true,
    NetworkAclId: id,
    Tags: [],
    VpcId: vpcId,
    OwnerId: ID.account,
  };
}

const FULL_ACCESS =
  '{\n  "Statement": [\n    {\n      "Action": "*", \n      "Effect": "Allow", \n      "Principal": "*", \n      "Resource": "*"\n    }\n  ]\n}';

function interfaceEndpoint(id: string, service: string, eni: string, privateDns: boolean) {
  const suffix = id.slice(5);
  const regional = `${id}-${suffix.slice(0, 8)}.${service}.${R}.vpce.amazonaws.com`;
  const dnsEntries =
    service === "s3"
      ? [
          { DnsName: `*.${regional}`, HostedZoneId: "Z7HUB22UULQXV" },
          {
            DnsName: `*.${id}-${suffix.slice(0, 8)}-${R}a.${service}.${R}.vpce.amazonaws.com`,
            HostedZoneId: "Z7HUB22UULQXV",
          },
        ]
      : [
          { DnsName: regional, HostedZoneId: "Z7HUB22UULQXV" },
          {
            DnsName: `${id}-${suffix.slice(0, 8)}-${R}a.${service}.${R}.vpce.amazonaws.com`,
            HostedZoneId: "Z7HUB22UULQXV",
          },
          ...(privateDns
            ? [{ DnsName: `${service}.${R}.amazonaws.com`, HostedZoneId: "ZONEIDPENDING" }]
            : []),
        ];
  return {
    VpcEndpointId: id,
    VpcEndpointType: "Interface",
    VpcId: ID.stgVpc,
    ServiceName: `com.amazonaws.${R}.${service}`,
    State: "available",
    PolicyDocument: FULL_ACCESS,
    RouteTableIds: [],
    SubnetIds: [ID.epSubnet],
    Groups: [{ GroupId: ID.sgEndpoints, GroupName: "mgn-endpoints" }],
    IpAddressType: "ipv4",
    DnsOptions: { DnsRecordIpType: "ipv4" },
    PrivateDnsEnabled: privateDns,
    RequesterManaged: false,
    NetworkInterfaceIds: [eni],
    DnsEntries: dnsEntries,
    CreationTimestamp: "2026-11-20T09:12:44.000000+00:00",
    Tags: [],
    OwnerId: ID.account,
  };
}

function endpointEni(id: string, ip: string, service: string) {
  return {
    AvailabilityZone: `${R}a`,
    Description: `VPC Endpoint Interface ${service}`,
    Groups: [{ GroupName: "mgn-endpoints", GroupId: ID.sgEndpoints }],
    InterfaceType: "vpc_endpoint",
    Ipv6Addresses: [],
    MacAddress: "0a:1b:2c:3d:4e:5f",
    NetworkInterfaceId: id,
    OwnerId: ID.account,
    PrivateDnsName: `ip-${ip.replaceAll(".", "-")}.ec2.internal`,
    PrivateIpAddress: ip,
    PrivateIpAddresses: [
      { Primary: true, PrivateDnsName: `ip-${ip.replaceAll(".", "-")}.ec2.internal`, PrivateIpAddress: ip },
    ],
    RequesterId: "727180483921",
    RequesterManaged: true,
    SourceDestCheck: true,
    Status: "in-use",
    SubnetId: ID.epSubnet,
    TagSet: [],
    VpcId: ID.stgVpc,
  };
}

const attribute = (vpcId: string, key: "EnableDnsSupport" | "EnableDnsHostnames") => ({
  VpcId: vpcId,
  [key]: { Value: true },
});

/** A fresh copy of the reference setup. */
export function referenceSetup(): FixtureFiles {
  const files: FixtureFiles = {
    "describe-vpcs.json": {
      Vpcs: [vpc(ID.srcVpc, SOURCE_CIDR, "source"), vpc(ID.stgVpc, STAGING_CIDR, "mgn-staging")],
    },
    "describe-subnets.json": {
      Subnets: [
        subnet(ID.srcSubnet, ID.srcVpc, "10.1.1.0/24", "source-servers"),
        subnet(ID.stgSubnet, ID.stgVpc, "10.0.1.0/24", "mgn-replication"),
        subnet(ID.epSubnet, ID.stgVpc, "10.0.2.0/24", "mgn-endpoints"),
      ],
    },
    "describe-route-tables.json": {
      RouteTables: [
        routeTable(
          ID.srcRtb,
          ID.srcVpc,
          [viaPeering(STAGING_CIDR), local(SOURCE_CIDR)],
          [ID.srcSubnet],
          false,
        ),
        routeTable(ID.srcMainRtb, ID.srcVpc, [local(SOURCE_CIDR)], [], true),
        routeTable(
          ID.stgRtb,
          ID.stgVpc,
          [
            viaPeering(SOURCE_CIDR),
            local(STAGING_CIDR),
            {
              DestinationPrefixListId: ID.plS3,
              GatewayId: ID.vpceS3Gw,
              Origin: "CreateRoute",
              State: "active",
            },
          ],
          [ID.stgSubnet, ID.epSubnet],
          false,
        ),
        routeTable(ID.stgMainRtb, ID.stgVpc, [local(STAGING_CIDR)], [], true),
      ],
    },
    "describe-security-groups.json": {
      SecurityGroups: [
        group(
          ID.sgSrc,
          ID.srcVpc,
          "source-servers",
          [tcp(22, [{ CidrIp: "10.1.0.0/16" }])],
          [allTraffic("0.0.0.0/0")],
        ),
        group(ID.sgSrcDefault, ID.srcVpc, "default", defaultGroupRules(ID.sgSrcDefault), [
          allTraffic("0.0.0.0/0"),
        ]),
        group(
          ID.sgEndpoints,
          ID.stgVpc,
          "mgn-endpoints",
          [
            tcp(443, [
              { CidrIp: SOURCE_CIDR, Description: "source network" },
              { CidrIp: "10.0.1.0/24", Description: "replication servers" },
            ]),
          ],
          [allTraffic("0.0.0.0/0")],
        ),
        group(
          ID.sgReplication,
          ID.stgVpc,
          "mgn-replication-servers",
          [tcp(1500, [{ CidrIp: SOURCE_CIDR, Description: "agents" }])],
          [tcp(443, [{ CidrIp: "0.0.0.0/0" }])],
        ),
        group(
          ID.sgResolver,
          ID.stgVpc,
          "mgn-resolver-inbound",
          [tcp(53, [{ CidrIp: SOURCE_CIDR }]), { ...tcp(53, [{ CidrIp: SOURCE_CIDR }]), IpProtocol: "udp" }],
          [allTraffic("0.0.0.0/0")],
        ),
        group(ID.sgStgDefault, ID.stgVpc, "default", defaultGroupRules(ID.sgStgDefault), [
          allTraffic("0.0.0.0/0"),
        ]),
      ],
    },
    "describe-network-acls.json": {
      NetworkAcls: [
        acl(ID.aclSrc, ID.srcVpc, [ID.srcSubnet]),
        acl(ID.aclStg, ID.stgVpc, [ID.stgSubnet, ID.epSubnet]),
      ],
    },
    "describe-vpc-endpoints.json": {
      VpcEndpoints: [
        interfaceEndpoint(ID.vpceMgn, "mgn", ID.eniMgn, true),
        interfaceEndpoint(ID.vpceEc2, "ec2", ID.eniEc2, true),
        interfaceEndpoint(ID.vpceS3, "s3", ID.eniS3, false),
        {
          VpcEndpointId: ID.vpceS3Gw,
          VpcEndpointType: "Gateway",
          VpcId: ID.stgVpc,
          ServiceName: `com.amazonaws.${R}.s3`,
          State: "available",
          PolicyDocument:
            '{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}',
          RouteTableIds: [ID.stgRtb],
          SubnetIds: [],
          Groups: [],
          PrivateDnsEnabled: false,
          RequesterManaged: false,
          NetworkInterfaceIds: [],
          DnsEntries: [],
          CreationTimestamp: "2026-11-20T09:10:02.000000+00:00",
          Tags: [],
          OwnerId: ID.account,
        },
      ],
    },
    "describe-network-interfaces.json": {
      NetworkInterfaces: [
        endpointEni(ID.eniMgn, IP.mgn, "mgn"),
        endpointEni(ID.eniEc2, IP.ec2, "ec2"),
        endpointEni(ID.eniS3, IP.s3, "s3"),
      ],
    },
    "describe-vpc-peering-connections.json": {
      VpcPeeringConnections: [
        {
          AccepterVpcInfo: {
            CidrBlock: STAGING_CIDR,
            CidrBlockSet: [{ CidrBlock: STAGING_CIDR }],
            OwnerId: ID.account,
            PeeringOptions: { AllowDnsResolutionFromRemoteVpc: false },
            VpcId: ID.stgVpc,
            Region: R,
          },
          RequesterVpcInfo: {
            CidrBlock: SOURCE_CIDR,
            CidrBlockSet: [{ CidrBlock: SOURCE_CIDR }],
            OwnerId: ID.account,
            PeeringOptions: { AllowDnsResolutionFromRemoteVpc: false },
            VpcId: ID.srcVpc,
            Region: R,
          },
          Status: { Code: "active", Message: "Active" },
          Tags: [],
          VpcPeeringConnectionId: ID.pcx,
        },
      ],
    },
    "describe-prefix-lists.json": {
      PrefixLists: [
        {
          Cidrs: ["3.218.0.0/15", "35.71.64.0/22", "52.94.224.0/20"],
          PrefixListId: ID.plDynamo,
          PrefixListName: `com.amazonaws.${R}.dynamodb`,
        },
        {
          Cidrs: [
            "16.15.176.0/20",
            "16.182.0.0/16",
            "18.34.0.0/19",
            "3.5.0.0/19",
            "44.192.134.240/28",
            "52.216.0.0/15",
            "54.231.0.0/16",
          ],
          PrefixListId: ID.plS3,
          PrefixListName: `com.amazonaws.${R}.s3`,
        },
      ],
    },
    "list-resolver-endpoints.json": {
      MaxResults: 10,
      ResolverEndpoints: [
        {
          Id: ID.resolver,
          CreatorRequestId: "ferry-mgn-staging",
          Arn: `arn:aws:route53resolver:${R}:${ID.account}:resolver-endpoint/${ID.resolver}`,
          Name: "mgn-inbound",
          SecurityGroupIds: [ID.sgResolver],
          Direction: "INBOUND",
          IpAddressCount: 2,
          HostVPCId: ID.stgVpc,
          Status: "OPERATIONAL",
          StatusMessage: "This Resolver Endpoint is operational.",
          CreationTime: "2026-11-20T09:14:31.108Z",
          ModificationTime: "2026-11-20T09:14:31.108Z",
          ResolverEndpointType: "IPV4",
          Protocols: ["Do53"],
        },
      ],
    },
    [`list-resolver-endpoint-ip-addresses-${ID.resolver}.json`]: {
      MaxResults: 10,
      IpAddresses: [
        {
          IpId: "rni-0aaa00000000000e1",
          SubnetId: ID.epSubnet,
          Ip: IP.resolver1,
          Status: "ATTACHED",
          StatusMessage: "This IP address is operational.",
          CreationTime: "2026-11-20T09:14:31.108Z",
          ModificationTime: "2026-11-20T09:14:31.108Z",
        },
        {
          IpId: "rni-0aaa00000000000e2",
          SubnetId: ID.epSubnet,
          Ip: IP.resolver2,
          Status: "ATTACHED",
          StatusMessage: "This IP address is operational.",
          CreationTime: "2026-11-20T09:14:31.108Z",
          ModificationTime: "2026-11-20T09:14:31.108Z",
        },
      ],
    },
    "describe-replication-configuration-templates.json": {
      items: [
        {
          arn: `arn:aws:mgn:${R}:${ID.account}:replication-configuration-template/${ID.template}`,
          associateDefaultSecurityGroup: false,
          bandwidthThrottling: 0,
          createPublicIP: false,
          dataPlaneRouting: "PRIVATE_IP",
          defaultLargeStagingDiskType: "GP3",
          ebsEncryption: "DEFAULT",
          replicationConfigurationTemplateID: ID.template,
          replicationServerInstanceType: "t3.small",
          replicationServersSecurityGroupsIDs: [ID.sgReplication],
          stagingAreaSubnetId: ID.stgSubnet,
          stagingAreaTags: {},
          tags: {},
          useDedicatedReplicationServer: false,
          useFipsEndpoint: false,
          internetProtocol: "IPV4",
        },
      ],
    },
  };
  for (const v of [ID.srcVpc, ID.stgVpc]) {
    files[`describe-vpc-attribute-${v}-enableDnsSupport.json`] = attribute(v, "EnableDnsSupport");
    files[`describe-vpc-attribute-${v}-enableDnsHostnames.json`] = attribute(v, "EnableDnsHostnames");
  }
  return files;
}

/** The hosts lines the reference source carries. */
export const REFERENCE_HOSTS = `127.0.0.1 localhost\n${IP.mgn} mgn.${R}.amazonaws.com\n${IP.ec2} ec2.${R}.amazonaws.com\n`;
