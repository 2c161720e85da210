/**
 * The network as it stands before `ferry aws plan` is deployed: the reference
 * setup without the endpoints, their groups, the resolver, the S3 route and
 * the MGN template. The plan test deploys the synthesised template into it.
 */
import { ID } from "./ids.ts";
import { list, remove, routes } from "./mutate.ts";
import { type FixtureFiles, referenceSetup } from "./reference.ts";

export function planBase(): FixtureFiles {
  const f = referenceSetup();
  list(f, "describe-vpc-endpoints.json", "VpcEndpoints").length = 0;
  list(f, "describe-network-interfaces.json", "NetworkInterfaces").length = 0;
  for (const g of [ID.sgEndpoints, ID.sgReplication, ID.sgResolver]) {
    remove(f, "describe-security-groups.json", "SecurityGroups", "GroupId", g);
  }
  const stg = routes(f, ID.stgRtb);
  stg.splice(
    stg.findIndex((r) => r.DestinationPrefixListId !== undefined),
    1,
  );
  list(f, "list-resolver-endpoints.json", "ResolverEndpoints").length = 0;
  delete f[`list-resolver-endpoint-ip-addresses-${ID.resolver}.json`];
  list(f, "describe-replication-configuration-templates.json", "items").length = 0;
  return f;
}

/** The parameters of `ferry aws plan` for this network. */
export const PLAN_PARAMS = {
  region: ID.region,
  stagingVpcId: ID.stgVpc,
  vpcCidr: "10.0.0.0/16",
  stagingSubnetId: ID.stgSubnet,
  stagingSubnetCidr: "10.0.1.0/24",
  routeTableId: ID.stgRtb,
  availabilityZone: `${ID.region}a`,
  sourceCidrs: ["10.1.0.0/16"],
} as const;
