/**
 * The reference setup done right, as the AWS CLI prints it: a source VPC
 * (standing in for the source network) peered with a staging VPC that has the
 * mgn, ec2 and S3 interface endpoints, the S3 gateway endpoint, an inbound
 * resolver and the MGN replication template. The corpus derives every
 * misconfiguration from a fresh copy of this.
 */
import { ID, IP, SOURCE_CIDR, STAGING_CIDR } from "./ids.ts";
import {
  R,
  allTraffic,
  tcp,
  vpc,
  subnet,
  local,
  viaPeering,
  routeTable,
  group,
  defaultGroupRules,
  acl,
  interfaceEndpoint,
  endpointEni,
  attribute,
} from "./reference-shapes.ts";

/** File name → parsed JSON, one entry per AWS CLI command output. */
export type FixtureFiles = Record<string, unknown>;

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
