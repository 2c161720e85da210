/**
 * Zod schemas for the JSON that `aws ec2 describe-*` prints, derived from the
 * botocore ec2 2016-11-15 model: member names and types as the model has them.
 * Objects are loose (other members pass through untouched); the members the
 * checker relies on are required so a file that is not what it claims to be
 * fails with the file and field named.
 */
import { z } from "zod";

const Tag = z.looseObject({ Key: z.string().optional(), Value: z.string().optional() });
const Tags = z.array(Tag).optional();

export const CidrBlockAssociation = z.looseObject({
  AssociationId: z.string().optional(),
  CidrBlock: z.string(),
  CidrBlockState: z.looseObject({ State: z.string().optional() }).optional(),
});

export const Vpc = z.looseObject({
  VpcId: z.string(),
  CidrBlock: z.string(),
  CidrBlockAssociationSet: z.array(CidrBlockAssociation).optional(),
  State: z.string().optional(),
  OwnerId: z.string().optional(),
  IsDefault: z.boolean().optional(),
  DhcpOptionsId: z.string().optional(),
  Tags,
});
export const DescribeVpcsResult = z.looseObject({ Vpcs: z.array(Vpc) });

export const Subnet = z.looseObject({
  SubnetId: z.string(),
  VpcId: z.string(),
  // Absent on IPv6-only subnets.
  CidrBlock: z.string().optional(),
  AvailabilityZone: z.string().optional(),
  AvailabilityZoneId: z.string().optional(),
  State: z.string().optional(),
  OwnerId: z.string().optional(),
  MapPublicIpOnLaunch: z.boolean().optional(),
  Tags,
});
export const DescribeSubnetsResult = z.looseObject({ Subnets: z.array(Subnet) });

export const Route = z.looseObject({
  DestinationCidrBlock: z.string().optional(),
  DestinationIpv6CidrBlock: z.string().optional(),
  DestinationPrefixListId: z.string().optional(),
  GatewayId: z.string().optional(),
  NatGatewayId: z.string().optional(),
  TransitGatewayId: z.string().optional(),
  NetworkInterfaceId: z.string().optional(),
  InstanceId: z.string().optional(),
  VpcPeeringConnectionId: z.string().optional(),
  Origin: z.string().optional(),
  State: z.enum(["active", "blackhole", "filtered"]).optional(),
});

export const RouteTableAssociation = z.looseObject({
  Main: z.boolean().optional(),
  RouteTableAssociationId: z.string().optional(),
  RouteTableId: z.string().optional(),
  SubnetId: z.string().optional(),
  GatewayId: z.string().optional(),
  AssociationState: z.looseObject({ State: z.string().optional() }).optional(),
});

export const RouteTable = z.looseObject({
  RouteTableId: z.string(),
  VpcId: z.string(),
  Routes: z.array(Route),
  Associations: z.array(RouteTableAssociation).optional(),
  PropagatingVgws: z.array(z.looseObject({ GatewayId: z.string().optional() })).optional(),
  OwnerId: z.string().optional(),
  Tags,
});
export const DescribeRouteTablesResult = z.looseObject({ RouteTables: z.array(RouteTable) });

export const UserIdGroupPair = z.looseObject({
  GroupId: z.string().optional(),
  GroupName: z.string().optional(),
  UserId: z.string().optional(),
  VpcId: z.string().optional(),
  VpcPeeringConnectionId: z.string().optional(),
  PeeringStatus: z.string().optional(),
  Description: z.string().optional(),
});

export const IpPermission = z.looseObject({
  IpProtocol: z.string(),
  FromPort: z.number().int().optional(),
  ToPort: z.number().int().optional(),
  IpRanges: z.array(z.looseObject({ CidrIp: z.string(), Description: z.string().optional() })).optional(),
  Ipv6Ranges: z.array(z.looseObject({ CidrIpv6: z.string() })).optional(),
  PrefixListIds: z
    .array(z.looseObject({ PrefixListId: z.string(), Description: z.string().optional() }))
    .optional(),
  UserIdGroupPairs: z.array(UserIdGroupPair).optional(),
});

export const SecurityGroup = z.looseObject({
  GroupId: z.string(),
  GroupName: z.string().optional(),
  Description: z.string().optional(),
  VpcId: z.string(),
  OwnerId: z.string().optional(),
  IpPermissions: z.array(IpPermission),
  IpPermissionsEgress: z.array(IpPermission),
  SecurityGroupArn: z.string().optional(),
  Tags,
});
export const DescribeSecurityGroupsResult = z.looseObject({ SecurityGroups: z.array(SecurityGroup) });

export const NetworkAclEntry = z.looseObject({
  RuleNumber: z.number().int(),
  Protocol: z.string(),
  RuleAction: z.enum(["allow", "deny"]),
  Egress: z.boolean(),
  CidrBlock: z.string().optional(),
  Ipv6CidrBlock: z.string().optional(),
  PortRange: z.looseObject({ From: z.number().int(), To: z.number().int() }).optional(),
  IcmpTypeCode: z.looseObject({ Code: z.number().optional(), Type: z.number().optional() }).optional(),
});

export const NetworkAcl = z.looseObject({
  NetworkAclId: z.string(),
  VpcId: z.string(),
  IsDefault: z.boolean().optional(),
  Entries: z.array(NetworkAclEntry),
  Associations: z
    .array(
      z.looseObject({
        NetworkAclAssociationId: z.string().optional(),
        NetworkAclId: z.string().optional(),
        SubnetId: z.string(),
      }),
    )
    .optional(),
  OwnerId: z.string().optional(),
  Tags,
});
export const DescribeNetworkAclsResult = z.looseObject({ NetworkAcls: z.array(NetworkAcl) });

export const VpcEndpoint = z.looseObject({
  VpcEndpointId: z.string(),
  VpcEndpointType: z.string(),
  VpcId: z.string(),
  // Absent on Resource and ServiceNetwork endpoints.
  ServiceName: z.string().default(""),
  // The model's enum is PascalCase ("Available"); the API returns lowercase.
  State: z.string(),
  PolicyDocument: z.string().optional(),
  RouteTableIds: z.array(z.string()).optional(),
  SubnetIds: z.array(z.string()).optional(),
  Groups: z.array(z.looseObject({ GroupId: z.string(), GroupName: z.string().optional() })).optional(),
  PrivateDnsEnabled: z.boolean().optional(),
  RequesterManaged: z.boolean().optional(),
  NetworkInterfaceIds: z.array(z.string()).optional(),
  DnsEntries: z.array(z.looseObject({ DnsName: z.string(), HostedZoneId: z.string().optional() })).optional(),
  DnsOptions: z.looseObject({ DnsRecordIpType: z.string().optional() }).optional(),
  IpAddressType: z.string().optional(),
  CreationTimestamp: z.string().optional(),
  OwnerId: z.string().optional(),
  Tags,
});
export const DescribeVpcEndpointsResult = z.looseObject({ VpcEndpoints: z.array(VpcEndpoint) });

export const NetworkInterface = z.looseObject({
  NetworkInterfaceId: z.string(),
  SubnetId: z.string(),
  VpcId: z.string(),
  // Absent on IPv6-only interfaces.
  PrivateIpAddress: z.string().optional(),
  PrivateIpAddresses: z
    .array(z.looseObject({ PrivateIpAddress: z.string(), Primary: z.boolean().optional() }))
    .optional(),
  // Some requester-managed interfaces print no groups.
  Groups: z.array(z.looseObject({ GroupId: z.string(), GroupName: z.string().optional() })).default([]),
  InterfaceType: z.string().optional(),
  RequesterManaged: z.boolean().optional(),
  RequesterId: z.string().optional(),
  Description: z.string().optional(),
  Status: z.string().optional(),
  AvailabilityZone: z.string().optional(),
  OwnerId: z.string().optional(),
  TagSet: Tags,
});
export const DescribeNetworkInterfacesResult = z.looseObject({
  NetworkInterfaces: z.array(NetworkInterface),
});

const PeeringVpcInfo = z.looseObject({
  VpcId: z.string(),
  CidrBlock: z.string().optional(),
  CidrBlockSet: z.array(z.looseObject({ CidrBlock: z.string() })).optional(),
  OwnerId: z.string().optional(),
  Region: z.string().optional(),
});

export const VpcPeeringConnection = z.looseObject({
  VpcPeeringConnectionId: z.string(),
  AccepterVpcInfo: PeeringVpcInfo,
  RequesterVpcInfo: PeeringVpcInfo,
  Status: z.looseObject({ Code: z.string(), Message: z.string().optional() }),
  Tags,
});
export const DescribeVpcPeeringConnectionsResult = z.looseObject({
  VpcPeeringConnections: z.array(VpcPeeringConnection),
});

export const PrefixList = z.looseObject({
  PrefixListId: z.string(),
  PrefixListName: z.string(),
  Cidrs: z.array(z.string()),
});
export const DescribePrefixListsResult = z.looseObject({ PrefixLists: z.array(PrefixList) });

const AttributeBooleanValue = z.looseObject({ Value: z.boolean() });
export const DescribeVpcAttributeResult = z.looseObject({
  VpcId: z.string(),
  EnableDnsSupport: AttributeBooleanValue.optional(),
  EnableDnsHostnames: AttributeBooleanValue.optional(),
});

export type Vpc = z.infer<typeof Vpc>;
export type Subnet = z.infer<typeof Subnet>;
export type Route = z.infer<typeof Route>;
export type RouteTable = z.infer<typeof RouteTable>;
export type IpPermission = z.infer<typeof IpPermission>;
export type SecurityGroup = z.infer<typeof SecurityGroup>;
export type NetworkAcl = z.infer<typeof NetworkAcl>;
export type NetworkAclEntry = z.infer<typeof NetworkAclEntry>;
export type VpcEndpoint = z.infer<typeof VpcEndpoint>;
export type NetworkInterface = z.infer<typeof NetworkInterface>;
export type VpcPeeringConnection = z.infer<typeof VpcPeeringConnection>;
export type PrefixList = z.infer<typeof PrefixList>;
export type DescribeVpcAttributeResult = z.infer<typeof DescribeVpcAttributeResult>;
