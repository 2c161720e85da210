/**
 * Route lookup as a VPC router does it: the subnet's table (explicit
 * association, else the main table), longest prefix match over CIDR routes and
 * prefix-list routes, and blackhole routes that match but do not forward.
 */
import { type Cidr, cidrContains, tryParseCidr } from "../model/cidr.ts";
import type { Route, RouteTable } from "../model/ec2-shapes.ts";
import { type AwsInventory, prefixListById } from "../model/inventory.ts";

export interface RouteMatch {
  route: Route;
  /** The destination as written in the route: a CIDR or a prefix list id. */
  destination: string;
  prefix: number;
  /** The next hop: local, pcx-…, vpce-…, igw-…, tgw-…, … */
  target: string;
  blackhole: boolean;
}

export function routeTarget(route: Route): string {
  return (
    route.VpcPeeringConnectionId ??
    route.TransitGatewayId ??
    route.NatGatewayId ??
    route.NetworkInterfaceId ??
    route.InstanceId ??
    route.GatewayId ??
    "unknown"
  );
}

/** Longest-prefix match for the whole of `dest` in `table`; undefined when nothing covers it. */
export function lookupRoute(inv: AwsInventory, table: RouteTable, dest: Cidr): RouteMatch | undefined {
  let best: RouteMatch | undefined;
  for (const route of table.Routes) {
    const candidates: { destination: string; cidr: Cidr }[] = [];
    if (route.DestinationCidrBlock) {
      const c = tryParseCidr(route.DestinationCidrBlock);
      if (c) candidates.push({ destination: route.DestinationCidrBlock, cidr: c });
    } else if (route.DestinationPrefixListId) {
      for (const text of prefixListById(inv, route.DestinationPrefixListId)?.Cidrs ?? []) {
        const c = tryParseCidr(text);
        if (c) candidates.push({ destination: route.DestinationPrefixListId, cidr: c });
      }
    }
    for (const { destination, cidr } of candidates) {
      if (!cidrContains(cidr, dest)) continue;
      if (best && best.prefix >= cidr.prefix) continue;
      best = {
        route,
        destination,
        prefix: cidr.prefix,
        target: routeTarget(route),
        blackhole: route.State === "blackhole",
      };
    }
  }
  return best;
}

/** The route for a prefix list (the S3 gateway route), if the table has one. */
export function prefixListRoute(
  table: RouteTable,
  prefixListId: string | undefined,
  gatewayId: string,
): Route | undefined {
  return (
    table.Routes.find((r) => prefixListId !== undefined && r.DestinationPrefixListId === prefixListId) ??
    table.Routes.find((r) => r.DestinationPrefixListId !== undefined && r.GatewayId === gatewayId)
  );
}
