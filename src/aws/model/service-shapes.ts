/**
 * Zod schemas for `aws route53resolver list-resolver-endpoints` /
 * `list-resolver-endpoint-ip-addresses` (botocore route53resolver 2018-04-01)
 * and `aws mgn describe-replication-configuration-templates` /
 * `get-replication-configuration` (botocore mgn 2020-02-26).
 */
import { z } from "zod";

export const ResolverEndpoint = z.looseObject({
  Id: z.string(),
  Arn: z.string().optional(),
  Name: z.string().optional(),
  SecurityGroupIds: z.array(z.string()),
  Direction: z.string(),
  IpAddressCount: z.number().int().optional(),
  HostVPCId: z.string(),
  Status: z.string(),
  StatusMessage: z.string().optional(),
  Protocols: z.array(z.string()).optional(),
  ResolverEndpointType: z.string().optional(),
});
export const ListResolverEndpointsResponse = z.looseObject({ ResolverEndpoints: z.array(ResolverEndpoint) });

export const ResolverIpAddress = z.looseObject({
  IpId: z.string().optional(),
  SubnetId: z.string(),
  Ip: z.string(),
  Status: z.string().optional(),
  StatusMessage: z.string().optional(),
});
export const ListResolverEndpointIpAddressesResponse = z.looseObject({
  IpAddresses: z.array(ResolverIpAddress),
});

const replicationSettings = {
  stagingAreaSubnetId: z.string(),
  associateDefaultSecurityGroup: z.boolean(),
  replicationServersSecurityGroupsIDs: z.array(z.string()),
  dataPlaneRouting: z.enum(["PRIVATE_IP", "PUBLIC_IP"]),
  createPublicIP: z.boolean(),
  replicationServerInstanceType: z.string().optional(),
  useDedicatedReplicationServer: z.boolean().optional(),
  defaultLargeStagingDiskType: z.string().optional(),
  ebsEncryption: z.string().optional(),
  bandwidthThrottling: z.number().optional(),
  stagingAreaTags: z.record(z.string(), z.string()).optional(),
  useFipsEndpoint: z.boolean().optional(),
  internetProtocol: z.string().optional(),
};

export const ReplicationConfigurationTemplate = z.looseObject({
  replicationConfigurationTemplateID: z.string(),
  arn: z.string().optional(),
  ...replicationSettings,
});
export const DescribeReplicationConfigurationTemplatesResponse = z.looseObject({
  items: z.array(ReplicationConfigurationTemplate),
});

export const ReplicationConfiguration = z.looseObject({
  sourceServerID: z.string(),
  name: z.string().optional(),
  ...replicationSettings,
});

export type ResolverEndpoint = z.infer<typeof ResolverEndpoint>;
export type ResolverIpAddress = z.infer<typeof ResolverIpAddress>;
export type ReplicationConfigurationTemplate = z.infer<typeof ReplicationConfigurationTemplate>;
export type ReplicationConfiguration = z.infer<typeof ReplicationConfiguration>;
