/**
 * Reads a directory of AWS CLI JSON (one file per describe-/list-/get- call,
 * named after the command) into a validated AwsInventory. Every file is
 * checked against its schema; an error names the file and the field.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { FerryError, systemErrorCode } from "../../lib/errors.ts";
import * as ec2 from "./ec2-shapes.ts";
import * as svc from "./service-shapes.ts";
import type { AwsInventory, VpcDnsAttributes } from "./inventory.ts";

/** Files the checker cannot work without. */
export const REQUIRED_FILES = [
  "describe-vpcs.json",
  "describe-subnets.json",
  "describe-route-tables.json",
  "describe-security-groups.json",
  "describe-network-acls.json",
  "describe-vpc-endpoints.json",
  "describe-network-interfaces.json",
] as const;

/** Files whose absence is reported where it matters. */
export const OPTIONAL_FILES = [
  "describe-vpc-peering-connections.json",
  "describe-prefix-lists.json",
  "list-resolver-endpoints.json",
  "describe-replication-configuration-templates.json",
] as const;

export const VPC_ATTRIBUTE_FILE =
  /^describe-vpc-attribute-(vpc-[0-9a-zA-Z]+)-(enableDnsSupport|enableDnsHostnames)\.json$/;
export const RESOLVER_IPS_FILE = /^list-resolver-endpoint-ip-addresses-(.+)\.json$/;
export const REPLICATION_CONFIGURATION_FILE = /^get-replication-configuration-(.+)\.json$/;

/** The file name `ferry aws collect` writes for a VPC attribute. */
export function vpcAttributeFileName(
  vpcId: string,
  attribute: "enableDnsSupport" | "enableDnsHostnames",
): string {
  return `describe-vpc-attribute-${vpcId}-${attribute}.json`;
}

/** Formats a zod issue path the way the AWS CLI output reads: `Subnets[0].CidrBlock`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(top level)" : out;
}

/** The AWS CLI command whose output `file` holds: `ec2 describe-subnets`, `mgn get-replication-configuration`, … */
export function cliCommand(file: string): string {
  const name = file.replace(/\.json$/, "");
  if (name.startsWith("describe-vpc-attribute-")) return "ec2 describe-vpc-attribute";
  if (name.startsWith("list-resolver-endpoint-ip-addresses"))
    return "route53resolver list-resolver-endpoint-ip-addresses";
  if (name.startsWith("list-resolver-endpoints")) return "route53resolver list-resolver-endpoints";
  if (name.startsWith("get-replication-configuration")) return "mgn get-replication-configuration";
  if (name === "describe-replication-configuration-templates")
    return "mgn describe-replication-configuration-templates";
  return `ec2 ${name}`;
}

/** Validates parsed JSON against a schema; the error names the file, the field and what was expected. */
export function validateFile<T extends z.ZodType>(file: string, schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? formatPath(issue.path) : "(top level)";
  const command = cliCommand(file);
  throw new FerryError(
    "AWS_INPUT_INVALID",
    `${file}: field ${field}: ${issue?.message ?? "invalid"}; expected the JSON that \`aws ${command}\` prints`,
    { details: { file, field } },
  );
}

async function readJson(dir: string, file: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, file), "utf8");
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return undefined;
    throw new FerryError("AWS_INPUT_UNREADABLE", `${join(dir, file)}: cannot read (${String(err)})`, {
      cause: err,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FerryError(
      "AWS_INPUT_INVALID",
      `${file}: not JSON (${(err as Error).message}); save the AWS CLI output with --output json`,
      { details: { file } },
    );
  }
}

async function required<T extends z.ZodType>(dir: string, file: string, schema: T): Promise<z.infer<T>> {
  const value = await readJson(dir, file);
  if (value === undefined) {
    throw new FerryError(
      "AWS_INPUT_MISSING",
      `${join(dir, file)} is missing; run \`ferry aws collect\` or save \`aws ${cliCommand(file)} --output json\` there`,
      { details: { file } },
    );
  }
  return validateFile(file, schema, value);
}

async function optional<T extends z.ZodType>(
  dir: string,
  file: string,
  schema: T,
  missing: string[],
): Promise<z.infer<T> | undefined> {
  const value = await readJson(dir, file);
  if (value === undefined) {
    missing.push(file);
    return undefined;
  }
  return validateFile(file, schema, value);
}

/** Loads and validates every describe-* file of `dir`. */
export async function loadInventory(dir: string): Promise<AwsInventory> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    throw new FerryError(
      "AWS_INPUT_MISSING",
      `${dir}: cannot list the directory (${String(err)}); pass the directory ferry aws collect wrote`,
      {
        cause: err,
      },
    );
  }
  const missing: string[] = [];
  const [vpcs, subnets, routeTables, groups, acls, endpoints, enis] = await Promise.all([
    required(dir, "describe-vpcs.json", ec2.DescribeVpcsResult),
    required(dir, "describe-subnets.json", ec2.DescribeSubnetsResult),
    required(dir, "describe-route-tables.json", ec2.DescribeRouteTablesResult),
    required(dir, "describe-security-groups.json", ec2.DescribeSecurityGroupsResult),
    required(dir, "describe-network-acls.json", ec2.DescribeNetworkAclsResult),
    required(dir, "describe-vpc-endpoints.json", ec2.DescribeVpcEndpointsResult),
    required(dir, "describe-network-interfaces.json", ec2.DescribeNetworkInterfacesResult),
  ]);
  const peerings = await optional(
    dir,
    "describe-vpc-peering-connections.json",
    ec2.DescribeVpcPeeringConnectionsResult,
    missing,
  );
  const prefixLists = await optional(
    dir,
    "describe-prefix-lists.json",
    ec2.DescribePrefixListsResult,
    missing,
  );
  const resolvers = await optional(
    dir,
    "list-resolver-endpoints.json",
    svc.ListResolverEndpointsResponse,
    missing,
  );
  const templates = await optional(
    dir,
    "describe-replication-configuration-templates.json",
    svc.DescribeReplicationConfigurationTemplatesResponse,
    missing,
  );

  const vpcAttributes = new Map<string, VpcDnsAttributes>();
  const resolverIpAddresses = new Map<string, svc.ResolverIpAddress[]>();
  const replicationConfigurations: svc.ReplicationConfiguration[] = [];
  for (const name of names) {
    const attr = VPC_ATTRIBUTE_FILE.exec(name);
    if (attr) {
      const [, vpcId = "", attribute = ""] = attr;
      const parsed = validateFile(name, ec2.DescribeVpcAttributeResult, await readJson(dir, name));
      const value = attribute === "enableDnsSupport" ? parsed.EnableDnsSupport : parsed.EnableDnsHostnames;
      if (parsed.VpcId !== vpcId || value === undefined) {
        throw new FerryError(
          "AWS_INPUT_INVALID",
          `${name}: field ${parsed.VpcId !== vpcId ? "VpcId" : attribute[0]?.toUpperCase() + attribute.slice(1)}: the file does not hold ${attribute} of ${vpcId}; save \`aws ec2 describe-vpc-attribute --vpc-id ${vpcId} --attribute ${attribute}\``,
          { details: { file: name } },
        );
      }
      const entry = vpcAttributes.get(vpcId) ?? {};
      entry[attribute as keyof VpcDnsAttributes] = value.Value;
      vpcAttributes.set(vpcId, entry);
      continue;
    }
    const rip = RESOLVER_IPS_FILE.exec(name);
    if (rip?.[1]) {
      const parsed = validateFile(
        name,
        svc.ListResolverEndpointIpAddressesResponse,
        await readJson(dir, name),
      );
      resolverIpAddresses.set(rip[1], parsed.IpAddresses);
      continue;
    }
    const rc = REPLICATION_CONFIGURATION_FILE.exec(name);
    if (rc) {
      replicationConfigurations.push(
        validateFile(name, svc.ReplicationConfiguration, await readJson(dir, name)),
      );
    }
  }

  return {
    vpcs: vpcs.Vpcs,
    subnets: subnets.Subnets,
    routeTables: routeTables.RouteTables,
    securityGroups: groups.SecurityGroups,
    networkAcls: acls.NetworkAcls,
    vpcEndpoints: endpoints.VpcEndpoints,
    networkInterfaces: enis.NetworkInterfaces,
    peerings: peerings?.VpcPeeringConnections,
    prefixLists: prefixLists?.PrefixLists,
    vpcAttributes,
    resolverEndpoints: resolvers?.ResolverEndpoints,
    resolverIpAddresses,
    templates: templates?.items,
    replicationConfigurations,
    missingFiles: missing,
  };
}
