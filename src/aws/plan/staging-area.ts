/**
 * MgnStagingArea: the private-network staging area for AWS MGN as a reusable
 * CDK construct. Everything aws-private-network.md asks for, with its traps
 * avoided: endpoint groups admit the source CIDRs and the replication subnet
 * (not just the VPC CIDR, CDK's `open: true` default), the S3 interface
 * endpoint has private DNS off, and the gateway endpoint is associated with
 * the route table the staging subnet really uses.
 */
import { Construct } from "constructs";
import {
  GatewayVpcEndpoint,
  GatewayVpcEndpointAwsService,
  InterfaceVpcEndpoint,
  InterfaceVpcEndpointService,
  type ISubnet,
  type IVpc,
  Peer,
  Port,
  SecurityGroup,
  Subnet,
  Vpc,
} from "aws-cdk-lib/aws-ec2";
import { CfnResolverEndpoint } from "aws-cdk-lib/aws-route53resolver";
import { CfnReplicationConfigurationTemplate } from "aws-cdk-lib/aws-mgn";

export interface MgnStagingAreaProps {
  region: string;
  stagingVpcId: string;
  vpcCidr: string;
  stagingSubnetId: string;
  stagingSubnetCidr: string;
  /** The route table the staging subnet uses (its explicit association, else the main table). */
  routeTableId: string;
  availabilityZone: string;
  /** The source network(s): admitted on 443 by the endpoints and on 1500 by the replication servers. */
  sourceCidrs: string[];
  /** How the source resolves mgn.<region>.amazonaws.com: hosts lines, or a Route 53 Resolver inbound endpoint. */
  dns: "hosts" | "resolver";
  /** Subnets for the resolver's two addresses. @default the staging subnet twice */
  resolverSubnetIds?: string[];
  /** @default "t3.small" */
  replicationServerInstanceType?: string;
}

export class MgnStagingArea extends Construct {
  readonly vpc: IVpc;
  readonly subnet: ISubnet;
  readonly endpointSecurityGroup: SecurityGroup;
  readonly replicationSecurityGroup: SecurityGroup;
  readonly mgnEndpoint: InterfaceVpcEndpoint;
  readonly ec2Endpoint: InterfaceVpcEndpoint;
  readonly s3InterfaceEndpoint: InterfaceVpcEndpoint;
  readonly s3GatewayEndpoint: GatewayVpcEndpoint;
  readonly resolverEndpoint: CfnResolverEndpoint | undefined;
  readonly replicationTemplate: CfnReplicationConfigurationTemplate;

  constructor(scope: Construct, id: string, props: MgnStagingAreaProps) {
    super(scope, id);
    this.vpc = Vpc.fromVpcAttributes(this, "Vpc", {
      vpcId: props.stagingVpcId,
      vpcCidrBlock: props.vpcCidr,
      availabilityZones: [props.availabilityZone],
    });
    this.subnet = Subnet.fromSubnetAttributes(this, "StagingSubnet", {
      subnetId: props.stagingSubnetId,
      routeTableId: props.routeTableId,
      availabilityZone: props.availabilityZone,
      ipv4CidrBlock: props.stagingSubnetCidr,
    });

    this.endpointSecurityGroup = new SecurityGroup(this, "EndpointGroup", {
      vpc: this.vpc,
      description: "MGN interface endpoints: 443 from the source network and the replication subnet",
      allowAllOutbound: true,
    });
    for (const cidr of [...props.sourceCidrs, props.stagingSubnetCidr]) {
      this.endpointSecurityGroup.addIngressRule(Peer.ipv4(cidr), Port.tcp(443), `HTTPS from ${cidr}`);
    }

    this.replicationSecurityGroup = new SecurityGroup(this, "ReplicationGroup", {
      vpc: this.vpc,
      description: "MGN replication servers: 1500 from the source network; 443 out to the endpoints and S3",
      allowAllOutbound: false,
    });
    for (const cidr of props.sourceCidrs) {
      this.replicationSecurityGroup.addIngressRule(
        Peer.ipv4(cidr),
        Port.tcp(1500),
        `replication from ${cidr}`,
      );
    }
    this.replicationSecurityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), "endpoints and S3 (gateway)");

    const iface = (name: string, service: string, privateDnsEnabled: boolean) =>
      new InterfaceVpcEndpoint(this, name, {
        vpc: this.vpc,
        service: new InterfaceVpcEndpointService(`com.amazonaws.${props.region}.${service}`, 443),
        subnets: { subnets: [this.subnet] },
        securityGroups: [this.endpointSecurityGroup],
        privateDnsEnabled,
        // open: true would add an ingress rule for the VPC CIDR only; the group above is explicit.
        open: false,
      });
    this.mgnEndpoint = iface("MgnEndpoint", "mgn", true);
    this.ec2Endpoint = iface("Ec2Endpoint", "ec2", true);
    // Private DNS off: the source reaches S3 by the endpoint's own name (--s3-endpoint), and the
    // replication server keeps using the gateway endpoint.
    this.s3InterfaceEndpoint = iface("S3InterfaceEndpoint", "s3", false);

    this.s3GatewayEndpoint = new GatewayVpcEndpoint(this, "S3GatewayEndpoint", {
      vpc: this.vpc,
      service: GatewayVpcEndpointAwsService.S3,
      subnets: [{ subnets: [this.subnet] }],
    });

    if (props.dns === "resolver") {
      const resolverGroup = new SecurityGroup(this, "ResolverGroup", {
        vpc: this.vpc,
        description: "Route 53 Resolver inbound endpoint: DNS from the source network",
        allowAllOutbound: true,
      });
      for (const cidr of props.sourceCidrs) {
        resolverGroup.addIngressRule(Peer.ipv4(cidr), Port.tcp(53), `DNS/TCP from ${cidr}`);
        resolverGroup.addIngressRule(Peer.ipv4(cidr), Port.udp(53), `DNS/UDP from ${cidr}`);
      }
      const subnets = props.resolverSubnetIds ?? [props.stagingSubnetId, props.stagingSubnetId];
      this.resolverEndpoint = new CfnResolverEndpoint(this, "InboundResolver", {
        direction: "INBOUND",
        name: "mgn-inbound",
        securityGroupIds: [resolverGroup.securityGroupId],
        ipAddresses: subnets.map((subnetId) => ({ subnetId })),
      });
    } else {
      this.resolverEndpoint = undefined;
    }

    this.replicationTemplate = new CfnReplicationConfigurationTemplate(this, "ReplicationTemplate", {
      stagingAreaSubnetId: props.stagingSubnetId,
      associateDefaultSecurityGroup: false,
      replicationServersSecurityGroupsIDs: [this.replicationSecurityGroup.securityGroupId],
      replicationServerInstanceType: props.replicationServerInstanceType ?? "t3.small",
      useDedicatedReplicationServer: false,
      defaultLargeStagingDiskType: "GP3",
      ebsEncryption: "DEFAULT",
      bandwidthThrottling: 0,
      dataPlaneRouting: "PRIVATE_IP",
      createPublicIp: false,
      stagingAreaTags: { "ferry:managed": "true" },
    });
  }
}
