/** Builders for AWS CLI JSON objects in the reference setup's shapes (botocore member names). */
import { ID } from "./ids.ts";

export const R = ID.region;
export const tags = (name: string) => [{ Key: "Name", Value: name }];
export const allTraffic = (cidr: string) => ({
  IpProtocol: "-1",
  IpRanges: [{ CidrIp: cidr }],
  Ipv6Ranges: [],
  PrefixListIds: [],
  UserIdGroupPairs: [],
});
export const tcp = (port: number, cidrs: { CidrIp: string; Description?: string }[]) => ({
  FromPort: port,
  IpProtocol: "tcp",
  IpRanges: cidrs,
  Ipv6Ranges: [],
  PrefixListIds: [],
  ToPort: port,
  UserIdGroupPairs: [],
});

export function vpc(id: string, cidr: string, name: string) {
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

export function subnet(id: string, vpcId: string, cidr: string, name: string) {
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

export const local = (cidr: string) => ({
  DestinationCidrBlock: cidr,
  GatewayId: "local",
  Origin: "CreateRouteTable",
  State: "active",
});
export const viaPeering = (cidr: string) => ({
  DestinationCidrBlock: cidr,
  Origin: "CreateRoute",
  State: "active",
  VpcPeeringConnectionId: ID.pcx,
});

export function routeTable(id: string, vpcId: string, routes: unknown[], subnets: string[], main: boolean) {
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

export function group(id: string, vpcId: string, name: string, ingress: unknown[], egress: unknown[]) {
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

export const defaultGroupRules = (id: string) => [
  {
    IpProtocol: "-1",
    IpRanges: [],
    Ipv6Ranges: [],
    PrefixListIds: [],
    UserIdGroupPairs: [{ GroupId: id, UserId: ID.account }],
  },
];

export function acl(id: string, vpcId: string, subnets: string[]) {
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

export const FULL_ACCESS =
  '{\n  "Statement": [\n    {\n      "Action": "*", \n      "Effect": "Allow", \n      "Principal": "*", \n      "Resource": "*"\n    }\n  ]\n}';

export function interfaceEndpoint(id: string, service: string, eni: string, privateDns: boolean) {
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

export function endpointEni(id: string, ip: string, service: string) {
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

export const attribute = (vpcId: string, key: "EnableDnsSupport" | "EnableDnsHostnames") => ({
  VpcId: vpcId,
  [key]: { Value: true },
});
