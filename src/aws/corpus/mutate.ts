/** Small editors for the free-form AWS JSON of a fixture, used by the case table. */
import type { FixtureFiles } from "./reference.ts";

/** One JSON object of an AWS CLI answer. */
export type Obj = Record<string, unknown>;

/** The list under `key` of `file` (Vpcs, Subnets, …). */
export function list(files: FixtureFiles, file: string, key: string): Obj[] {
  const doc = files[file] as Obj | undefined;
  const value = doc?.[key];
  if (!Array.isArray(value)) throw new Error(`fixture ${file} has no list ${key}`);
  return value as Obj[];
}

/** The object of `file`'s `key` list whose `idField` is `id`. */
export function item(files: FixtureFiles, file: string, key: string, idField: string, id: string): Obj {
  const found = list(files, file, key).find((o) => o[idField] === id);
  if (!found) throw new Error(`fixture ${file} has no ${key} entry ${id}`);
  return found;
}

export function remove(files: FixtureFiles, file: string, key: string, idField: string, id: string): void {
  const l = list(files, file, key);
  const i = l.findIndex((o) => o[idField] === id);
  if (i < 0) throw new Error(`fixture ${file} has no ${key} entry ${id}`);
  l.splice(i, 1);
}

export const routeTable = (f: FixtureFiles, id: string) =>
  item(f, "describe-route-tables.json", "RouteTables", "RouteTableId", id);
export const group = (f: FixtureFiles, id: string) =>
  item(f, "describe-security-groups.json", "SecurityGroups", "GroupId", id);
export const endpoint = (f: FixtureFiles, id: string) =>
  item(f, "describe-vpc-endpoints.json", "VpcEndpoints", "VpcEndpointId", id);
export const acl = (f: FixtureFiles, id: string) =>
  item(f, "describe-network-acls.json", "NetworkAcls", "NetworkAclId", id);
export const template = (f: FixtureFiles) =>
  list(f, "describe-replication-configuration-templates.json", "items")[0] as Obj;

export function routes(f: FixtureFiles, tableId: string): Obj[] {
  return routeTable(f, tableId).Routes as Obj[];
}

export const tcpRule = (from: number, to: number, cidr: string) => ({
  FromPort: from,
  IpProtocol: "tcp",
  IpRanges: [{ CidrIp: cidr }],
  Ipv6Ranges: [],
  PrefixListIds: [],
  ToPort: to,
  UserIdGroupPairs: [],
});

export const aclEntry = (
  egress: boolean,
  ruleNumber: number,
  action: "allow" | "deny",
  protocol: string,
  cidr: string,
  ports?: [number, number],
) => ({
  CidrBlock: cidr,
  Egress: egress,
  Protocol: protocol,
  RuleAction: action,
  RuleNumber: ruleNumber,
  ...(ports ? { PortRange: { From: ports[0], To: ports[1] } } : {}),
});
