/**
 * `ferry aws collect`: writes the directory `ferry aws check` reads, with
 * read-only AWS SDK v3 calls (Describe*, List*, Get*), one file per AWS CLI
 * command, named after it, in the shape the AWS CLI prints.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DescribeNetworkAclsCommand,
  DescribeNetworkInterfacesCommand,
  DescribePrefixListsCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcAttributeCommand,
  DescribeVpcEndpointsCommand,
  DescribeVpcPeeringConnectionsCommand,
  DescribeVpcsCommand,
  EC2Client,
  type Filter,
} from "@aws-sdk/client-ec2";
import {
  ListResolverEndpointIpAddressesCommand,
  ListResolverEndpointsCommand,
  Route53ResolverClient,
} from "@aws-sdk/client-route53resolver";
import {
  DescribeReplicationConfigurationTemplatesCommand,
  GetReplicationConfigurationCommand,
  MgnClient,
} from "@aws-sdk/client-mgn";
import { FerryError } from "../../lib/errors.ts";
import { vpcAttributeFileName } from "../model/loader.ts";

export interface CollectOptions {
  outDir: string;
  /** The staging VPC and, when the source is in AWS, the source VPC. */
  vpcIds: string[];
  sourceServerIds?: string[];
  region?: string;
  profile?: string;
  /** Every call goes here (tests; or a VPC endpoint URL). */
  endpointUrl?: string;
  /** Explicit credentials (tests); default: the SDK's chain for `profile`. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Upper bound on pages per call. @default 100 */
  maxPages?: number;
}

type Page = Record<string, unknown> & { NextToken?: string; nextToken?: string };

/** Drops SDK-only fields ($metadata, tokens) and undefined values, as the CLI output has none. */
function cliShape(value: object): Record<string, unknown> {
  const { $metadata: _m, NextToken: _n, nextToken: _t, ...rest } = value as Page;
  return JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
}

async function allPages(
  key: string,
  maxPages: number,
  call: (token: string | undefined) => Promise<object>,
): Promise<Record<string, unknown>> {
  const items: unknown[] = [];
  let token: string | undefined;
  let first: Page | undefined;
  for (let page = 0; page < maxPages; page++) {
    const out = (await call(token)) as Page;
    first ??= out;
    items.push(...((out[key] as unknown[] | undefined) ?? []));
    token = out.NextToken ?? out.nextToken;
    if (!token) return { ...cliShape(first), [key]: JSON.parse(JSON.stringify(items)) as unknown[] };
  }
  throw new FerryError(
    "AWS_COLLECT_TOO_MANY_PAGES",
    `${key}: more than ${maxPages} pages; narrow the VPC list`,
  );
}

function sdkError(err: unknown, what: string): FerryError {
  const e = err as { name?: string; message?: string };
  return new FerryError(
    "AWS_COLLECT_FAILED",
    `${what} failed: ${e.name ?? "Error"}: ${e.message ?? String(err)}; check the profile, region and the read-only permissions (ec2:Describe*, route53resolver:List*, mgn:Describe*/Get*)`,
    {
      cause: err,
      details: { call: what },
    },
  );
}

/** Collects every file and returns their names, sorted. */
export async function collectInventory(o: CollectOptions): Promise<string[]> {
  if (o.vpcIds.length === 0)
    throw new FerryError("AWS_NO_VPC", "pass at least one --vpc <vpc-id> (the staging VPC)");
  const config = {
    ...(o.region ? { region: o.region } : {}),
    ...(o.endpointUrl ? { endpoint: o.endpointUrl } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    maxAttempts: 2,
  };
  const ec2 = new EC2Client({ ...config, ...(o.profile ? { profile: o.profile } : {}) });
  // One credential chain for all three services: the EC2 client's, resolved for the profile.
  let region: string;
  try {
    region = o.region ?? (await ec2.config.region());
  } catch (err) {
    ec2.destroy();
    throw new FerryError(
      "AWS_NO_REGION",
      "no region: pass --region or set AWS_REGION (or a region in the profile)",
      {
        cause: err,
      },
    );
  }
  const shared = { ...config, credentials: o.credentials ?? ec2.config.credentials, region };
  const resolver = new Route53ResolverClient(shared);
  const mgn = new MgnClient(shared);
  const maxPages = o.maxPages ?? 100;
  const files: Record<string, unknown> = {};
  const byVpc: Filter[] = [{ Name: "vpc-id", Values: o.vpcIds }];
  const run = async (file: string, fn: () => Promise<unknown>) => {
    try {
      files[file] = await fn();
    } catch (err) {
      throw sdkError(err, file.replace(/\.json$/, ""));
    }
  };
  try {
    await run("describe-vpcs.json", () =>
      allPages("Vpcs", maxPages, (NextToken) =>
        ec2.send(new DescribeVpcsCommand({ VpcIds: o.vpcIds, NextToken })),
      ),
    );
    await run("describe-subnets.json", () =>
      allPages("Subnets", maxPages, (NextToken) =>
        ec2.send(new DescribeSubnetsCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-route-tables.json", () =>
      allPages("RouteTables", maxPages, (NextToken) =>
        ec2.send(new DescribeRouteTablesCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-security-groups.json", () =>
      allPages("SecurityGroups", maxPages, (NextToken) =>
        ec2.send(new DescribeSecurityGroupsCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-network-acls.json", () =>
      allPages("NetworkAcls", maxPages, (NextToken) =>
        ec2.send(new DescribeNetworkAclsCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-vpc-endpoints.json", () =>
      allPages("VpcEndpoints", maxPages, (NextToken) =>
        ec2.send(new DescribeVpcEndpointsCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-network-interfaces.json", () =>
      allPages("NetworkInterfaces", maxPages, (NextToken) =>
        ec2.send(new DescribeNetworkInterfacesCommand({ Filters: byVpc, NextToken })),
      ),
    );
    await run("describe-vpc-peering-connections.json", async () => {
      const seen = new Map<string, unknown>();
      for (const side of ["requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"]) {
        const page = await allPages("VpcPeeringConnections", maxPages, (NextToken) =>
          ec2.send(
            new DescribeVpcPeeringConnectionsCommand({
              Filters: [{ Name: side, Values: o.vpcIds }],
              NextToken,
            }),
          ),
        );
        for (const p of page.VpcPeeringConnections as { VpcPeeringConnectionId: string }[])
          seen.set(p.VpcPeeringConnectionId, p);
      }
      return { VpcPeeringConnections: [...seen.values()] };
    });
    await run("describe-prefix-lists.json", () =>
      allPages("PrefixLists", maxPages, (NextToken) =>
        ec2.send(new DescribePrefixListsCommand({ NextToken })),
      ),
    );
    for (const vpcId of o.vpcIds) {
      for (const attribute of ["enableDnsSupport", "enableDnsHostnames"] as const) {
        await run(vpcAttributeFileName(vpcId, attribute), async () =>
          cliShape(await ec2.send(new DescribeVpcAttributeCommand({ VpcId: vpcId, Attribute: attribute }))),
        );
      }
    }
    await run("list-resolver-endpoints.json", () =>
      allPages("ResolverEndpoints", maxPages, (NextToken) =>
        resolver.send(new ListResolverEndpointsCommand({ NextToken })),
      ),
    );
    for (const r of (files["list-resolver-endpoints.json"] as { ResolverEndpoints: { Id: string }[] })
      .ResolverEndpoints) {
      await run(`list-resolver-endpoint-ip-addresses-${r.Id}.json`, () =>
        allPages("IpAddresses", maxPages, (NextToken) =>
          resolver.send(new ListResolverEndpointIpAddressesCommand({ ResolverEndpointId: r.Id, NextToken })),
        ),
      );
    }
    await run("describe-replication-configuration-templates.json", () =>
      allPages("items", maxPages, (nextToken) =>
        mgn.send(new DescribeReplicationConfigurationTemplatesCommand({ nextToken })),
      ),
    );
    for (const id of o.sourceServerIds ?? []) {
      await run(`get-replication-configuration-${id}.json`, async () =>
        cliShape(await mgn.send(new GetReplicationConfigurationCommand({ sourceServerID: id }))),
      );
    }
  } finally {
    ec2.destroy();
    resolver.destroy();
    mgn.destroy();
  }
  await mkdir(o.outDir, { recursive: true });
  const names = Object.keys(files).sort();
  for (const name of names)
    await writeFile(join(o.outDir, name), `${JSON.stringify(files[name], null, 4)}\n`);
  return names;
}
