/** The AWS CLI commands a finding proposes; kept in one place so every fix reads the same. */

export type Direction = "ingress" | "egress";

/** `IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=10.1.0.0/16}]` */
export function ipPermission(
  protocol: string,
  port: number,
  peer: { cidr?: string; prefixListId?: string },
): string {
  const target = peer.prefixListId
    ? `PrefixListIds=[{PrefixListId=${peer.prefixListId}}]`
    : `IpRanges=[{CidrIp=${peer.cidr ?? "0.0.0.0/0"}}]`;
  return `IpProtocol=${protocol},FromPort=${port},ToPort=${port},${target}`;
}

export function authorizeGroup(
  direction: Direction,
  groupId: string,
  protocol: string,
  port: number,
  peer: { cidr?: string; prefixListId?: string },
): string {
  return `aws ec2 authorize-security-group-${direction} --group-id ${groupId} --ip-permissions '${ipPermission(protocol, port, peer)}'`;
}

export function naclEntry(
  aclId: string,
  egress: boolean,
  ruleNumber: number,
  protocol: string,
  from: number,
  to: number,
  cidr: string,
): string {
  return `aws ec2 create-network-acl-entry --network-acl-id ${aclId} --${egress ? "egress" : "ingress"} --rule-number ${ruleNumber} --protocol ${protocol} --port-range From=${from},To=${to} --cidr-block ${cidr} --rule-action allow`;
}

export function routeTarget(route: { target: string }): string {
  if (route.target.startsWith("pcx-") || route.target === "<pcx-id>")
    return `--vpc-peering-connection-id ${route.target}`;
  if (route.target.startsWith("tgw-")) return `--transit-gateway-id ${route.target}`;
  if (route.target.startsWith("eni-")) return `--network-interface-id ${route.target}`;
  return `--gateway-id ${route.target}`;
}

export function createRoute(tableId: string, cidr: string, target: string, replace = false): string {
  return `aws ec2 ${replace ? "replace-route" : "create-route"} --route-table-id ${tableId} --destination-cidr-block ${cidr} ${routeTarget({ target })}`;
}
