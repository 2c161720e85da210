/**
 * The validated content of a describe-* directory, indexed for the evaluator.
 * A collection is `undefined` when its optional file was absent: the checker
 * reports that instead of guessing.
 */
import type {
  NetworkAcl,
  NetworkInterface,
  PrefixList,
  RouteTable,
  SecurityGroup,
  Subnet,
  Vpc,
  VpcEndpoint,
  VpcPeeringConnection,
} from "./ec2-shapes.ts";
import type {
  ReplicationConfiguration,
  ReplicationConfigurationTemplate,
  ResolverEndpoint,
  ResolverIpAddress,
} from "./service-shapes.ts";

export interface VpcDnsAttributes {
  enableDnsSupport?: boolean;
  enableDnsHostnames?: boolean;
}

export interface AwsInventory {
  vpcs: Vpc[];
  subnets: Subnet[];
  routeTables: RouteTable[];
  securityGroups: SecurityGroup[];
  networkAcls: NetworkAcl[];
  vpcEndpoints: VpcEndpoint[];
  networkInterfaces: NetworkInterface[];
  peerings: VpcPeeringConnection[] | undefined;
  prefixLists: PrefixList[] | undefined;
  /** Keyed by VPC id; an attribute is absent when its file was. */
  vpcAttributes: Map<string, VpcDnsAttributes>;
  resolverEndpoints: ResolverEndpoint[] | undefined;
  /** Keyed by resolver endpoint id. */
  resolverIpAddresses: Map<string, ResolverIpAddress[]>;
  templates: ReplicationConfigurationTemplate[] | undefined;
  replicationConfigurations: ReplicationConfiguration[];
  /** Optional files that were not in the directory, by name. */
  missingFiles: string[];
}

/** An empty inventory, for tests and for the plan converter to fill. */
export function emptyInventory(): AwsInventory {
  return {
    vpcs: [],
    subnets: [],
    routeTables: [],
    securityGroups: [],
    networkAcls: [],
    vpcEndpoints: [],
    networkInterfaces: [],
    peerings: [],
    prefixLists: [],
    vpcAttributes: new Map(),
    resolverEndpoints: [],
    resolverIpAddresses: new Map(),
    templates: [],
    replicationConfigurations: [],
    missingFiles: [],
  };
}

export function findVpc(inv: AwsInventory, vpcId: string): Vpc | undefined {
  return inv.vpcs.find((v) => v.VpcId === vpcId);
}

export function findSubnet(inv: AwsInventory, subnetId: string): Subnet | undefined {
  return inv.subnets.find((s) => s.SubnetId === subnetId);
}

export function findGroup(inv: AwsInventory, groupId: string): SecurityGroup | undefined {
  return inv.securityGroups.find((g) => g.GroupId === groupId);
}

export function findEni(inv: AwsInventory, eniId: string): NetworkInterface | undefined {
  return inv.networkInterfaces.find((n) => n.NetworkInterfaceId === eniId);
}

/** Every IPv4 CIDR of a VPC: the primary and its associated blocks. */
export function vpcCidrs(vpc: Vpc): string[] {
  const extra = (vpc.CidrBlockAssociationSet ?? [])
    .filter((a) => (a.CidrBlockState?.State ?? "associated") === "associated")
    .map((a) => a.CidrBlock);
  return [...new Set([vpc.CidrBlock, ...extra])];
}

/** The route table a subnet uses: its explicit association, else its VPC's main table. */
export function routeTableOfSubnet(
  inv: AwsInventory,
  subnet: Subnet,
): { table: RouteTable; viaMain: boolean } | undefined {
  const explicit = inv.routeTables.find((t) =>
    (t.Associations ?? []).some((a) => a.SubnetId === subnet.SubnetId),
  );
  if (explicit) return { table: explicit, viaMain: false };
  const main = inv.routeTables.find(
    (t) => t.VpcId === subnet.VpcId && (t.Associations ?? []).some((a) => a.Main === true),
  );
  return main ? { table: main, viaMain: true } : undefined;
}

/** The network ACL a subnet uses: its association, else the VPC's default ACL. */
export function networkAclOfSubnet(inv: AwsInventory, subnet: Subnet): NetworkAcl | undefined {
  return (
    inv.networkAcls.find((a) => (a.Associations ?? []).some((x) => x.SubnetId === subnet.SubnetId)) ??
    inv.networkAcls.find((a) => a.VpcId === subnet.VpcId && a.IsDefault === true)
  );
}

export function prefixListById(inv: AwsInventory, id: string): PrefixList | undefined {
  return inv.prefixLists?.find((p) => p.PrefixListId === id);
}
