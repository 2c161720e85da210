/**
 * F6: the replication server reaches S3 through the gateway endpoint: the
 * endpoint is associated with the route table the staging subnet really uses
 * (explicit association, else main), that table's prefix-list route is
 * active, the server's groups allow 443 to the S3 prefix list, the subnet's
 * ACL lets the request out and the reply in, and the endpoint policy allows
 * the MGN buckets.
 */
import { tryParseCidr, type Cidr } from "../model/cidr.ts";
import type { VpcEndpoint } from "../model/ec2-shapes.ts";
import { findSubnet, routeTableOfSubnet } from "../model/inventory.ts";
import { type CheckContext, inputMissing } from "./context.ts";
import type { Finding } from "./findings.ts";
import { aclFindings, groupFindings, type Party } from "./path.ts";
import { prefixListRoute } from "./routes.ts";
import { endpointFindings, policyFindings, serviceName } from "./endpoints.ts";

export function s3GatewayFindings(
  ctx: CheckContext,
  gw: VpcEndpoint | undefined,
  server: Party,
  vpcId: string,
): Finding[] {
  const out = endpointFindings(ctx, "s3-gateway", gw, vpcId, server.subnetId ?? undefined, false);
  if (!gw || !server.subnetId) return out;
  const subnet = findSubnet(ctx.inv, server.subnetId);
  const rt = subnet && routeTableOfSubnet(ctx.inv, subnet);
  const plName = serviceName(ctx.region, "s3");
  const pl = ctx.inv.prefixLists?.find((p) => p.PrefixListName === plName);
  if (rt) {
    const tableId = rt.table.RouteTableId;
    const how = rt.viaMain
      ? `main route table ${tableId} (${server.subnetId} has no explicit association)`
      : tableId;
    if (!(gw.RouteTableIds ?? []).includes(tableId)) {
      out.push({
        rule: "F6",
        code: "VPCE_GATEWAY_ROUTE_TABLE_NOT_ASSOCIATED",
        resources: [gw.VpcEndpointId, tableId],
        found: `${gw.VpcEndpointId} is associated with ${(gw.RouteTableIds ?? []).join(", ") || "no route table"}; the staging subnet uses ${how}`,
        fix: `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${gw.VpcEndpointId} --add-route-table-ids ${tableId}`,
      });
    } else {
      const route = prefixListRoute(rt.table, pl?.PrefixListId, gw.VpcEndpointId);
      if (!route) {
        out.push({
          rule: "F6",
          code: "VPCE_GATEWAY_ROUTE_MISSING",
          resources: [tableId, gw.VpcEndpointId],
          found: `${how} has no route for the S3 prefix list through ${gw.VpcEndpointId}`,
          fix: `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${gw.VpcEndpointId} --remove-route-table-ids ${tableId} && aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${gw.VpcEndpointId} --add-route-table-ids ${tableId}`,
        });
      } else if (route.State === "blackhole") {
        out.push({
          rule: "F6",
          code: "BAD_STATE_ROUTE",
          resources: [tableId, route.GatewayId ?? gw.VpcEndpointId],
          found: `route ${route.DestinationPrefixListId ?? ""} → ${route.GatewayId ?? ""} in ${how} is a blackhole`,
          fix: `aws ec2 delete-route --route-table-id ${tableId} --destination-prefix-list-id ${route.DestinationPrefixListId ?? ""} && aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${gw.VpcEndpointId} --add-route-table-ids ${tableId}`,
        });
      } else if (route.GatewayId !== gw.VpcEndpointId) {
        out.push({
          rule: "F6",
          code: "VPCE_GATEWAY_ROUTE_MISSING",
          resources: [tableId, route.GatewayId ?? "unknown"],
          found: `the S3 prefix-list route in ${how} goes to ${route.GatewayId ?? "another target"}, not to ${gw.VpcEndpointId}`,
          fix: `aws ec2 modify-vpc-endpoint --vpc-endpoint-id ${gw.VpcEndpointId} --add-route-table-ids ${tableId}`,
        });
      }
    }
  }
  if (!pl) {
    out.push(
      inputMissing(
        "F6",
        "describe-prefix-lists.json",
        `the ${plName} prefix list (security-group and ACL rules toward S3)`,
      ),
    );
  } else {
    const s3: Party = {
      id: pl.PrefixListId,
      vpcId: null,
      subnetId: null,
      cidrs: pl.Cidrs.map((c) => tryParseCidr(c)).filter((c): c is Cidr => c !== undefined),
      groups: null,
      prefixListId: pl.PrefixListId,
    };
    const spec = { rule: "F6", protocol: "tcp" as const, port: 443, from: server, to: s3 };
    out.push(...groupFindings(ctx, spec), ...aclFindings(ctx, spec));
  }
  out.push(...policyFindings(ctx, "s3-gateway", gw));
  return out;
}
