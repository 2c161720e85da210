/**
 * A small local stand-in for the EC2 (query/XML), Route 53 Resolver
 * (JSON 1.1) and MGN (REST-JSON) endpoints, answering the read-only calls
 * `ferry aws collect` makes from a set of describe-* files. For tests: it
 * listens on 127.0.0.1 only and records every call it served.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

type Files = Record<string, unknown>;

/** botocore locationNames that are not the member name in lowerCamel (ec2 2016-11-15). */
const LOCATION: Record<string, string> = {
  Vpcs: "vpcSet",
  Tags: "tagSet",
  Subnets: "subnetSet",
  RouteTables: "routeTableSet",
  Associations: "associationSet",
  PropagatingVgws: "propagatingVgwSet",
  Routes: "routeSet",
  SecurityGroups: "securityGroupInfo",
  UserIdGroupPairs: "groups",
  NetworkAcls: "networkAclSet",
  Entries: "entrySet",
  VpcEndpoints: "vpcEndpointSet",
  RouteTableIds: "routeTableIdSet",
  SubnetIds: "subnetIdSet",
  Groups: "groupSet",
  NetworkInterfaceIds: "networkInterfaceIdSet",
  DnsEntries: "dnsEntrySet",
  NetworkInterfaces: "networkInterfaceSet",
  Ipv6Addresses: "ipv6AddressesSet",
  PrivateIpAddresses: "privateIpAddressesSet",
  VpcPeeringConnections: "vpcPeeringConnectionSet",
  PrefixLists: "prefixListSet",
  Cidrs: "cidrSet",
};

function locationName(member: string, parent: string): string {
  if (parent === "SecurityGroups" && member === "Description") return "groupDescription";
  if (parent === "NetworkAcls" && member === "IsDefault") return "default";
  return LOCATION[member] ?? member[0]!.toLowerCase() + member.slice(1);
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Serialises AWS CLI JSON back into the EC2 query protocol's XML. */
export function ec2Xml(value: unknown, parent = ""): string {
  if (Array.isArray(value)) return value.map((v) => `<item>${ec2Xml(v, parent)}</item>`).join("");
  if (typeof value === "object" && value !== null) {
    return Object.entries(value)
      .map(([k, v]) => {
        const name = locationName(k, parent);
        return `<${name}>${ec2Xml(v, k)}</${name}>`;
      })
      .join("");
  }
  return esc(String(value));
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const EC2_FILES: Record<string, [string, string]> = {
  DescribeVpcs: ["describe-vpcs.json", "Vpcs"],
  DescribeSubnets: ["describe-subnets.json", "Subnets"],
  DescribeRouteTables: ["describe-route-tables.json", "RouteTables"],
  DescribeSecurityGroups: ["describe-security-groups.json", "SecurityGroups"],
  DescribeNetworkAcls: ["describe-network-acls.json", "NetworkAcls"],
  DescribeVpcEndpoints: ["describe-vpc-endpoints.json", "VpcEndpoints"],
  DescribeNetworkInterfaces: ["describe-network-interfaces.json", "NetworkInterfaces"],
  DescribeVpcPeeringConnections: ["describe-vpc-peering-connections.json", "VpcPeeringConnections"],
  DescribePrefixLists: ["describe-prefix-lists.json", "PrefixLists"],
};

export interface FakeAws {
  url: string;
  /** Every call served, as Service:Operation. */
  calls: string[];
  close(): Promise<void>;
}

/** Serves `files`; lists answer one item per page so paging is exercised. */
export async function startFakeAws(files: Files): Promise<FakeAws> {
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await body(req);
      const target = req.headers["x-amz-target"];
      if (typeof target === "string") {
        const op = target.split(".")[1] ?? "";
        calls.push(`route53resolver:${op}`);
        const input = JSON.parse(text || "{}") as { ResolverEndpointId?: string };
        const file =
          op === "ListResolverEndpoints"
            ? "list-resolver-endpoints.json"
            : `list-resolver-endpoint-ip-addresses-${input.ResolverEndpointId}.json`;
        res
          .writeHead(200, { "content-type": "application/x-amz-json-1.1" })
          .end(JSON.stringify(files[file] ?? {}));
        return;
      }
      if (
        req.url?.startsWith("/DescribeReplicationConfigurationTemplates") ||
        req.url?.startsWith("/GetReplicationConfiguration")
      ) {
        const op = req.url.slice(1).split("?")[0] ?? "";
        calls.push(`mgn:${op}`);
        const input = JSON.parse(text || "{}") as { sourceServerID?: string };
        const file =
          op === "GetReplicationConfiguration"
            ? `get-replication-configuration-${input.sourceServerID}.json`
            : "describe-replication-configuration-templates.json";
        const doc = files[file];
        if (!doc) {
          res
            .writeHead(404, {
              "content-type": "application/json",
              "x-amzn-errortype": "ResourceNotFoundException",
            })
            .end(JSON.stringify({ message: "Source server not found" }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(doc));
        return;
      }
      const params = new URLSearchParams(text);
      const action = params.get("Action") ?? "";
      calls.push(`ec2:${action}`);
      let inner: string;
      if (action === "DescribeVpcAttribute") {
        const attr = params.get("Attribute") ?? "";
        const doc = files[`describe-vpc-attribute-${params.get("VpcId")}-${attr}.json`] as Record<
          string,
          unknown
        >;
        inner = ec2Xml(doc);
      } else {
        const spec = EC2_FILES[action];
        if (!spec) {
          res
            .writeHead(400)
            .end(
              `<Response><Errors><Error><Code>InvalidAction</Code><Message>${esc(action)}</Message></Error></Errors></Response>`,
            );
          return;
        }
        const all = ((files[spec[0]] as Record<string, unknown[]>)[spec[1]] ?? []) as unknown[];
        const start = Number(params.get("NextToken") ?? "0");
        const page = all.slice(start, start + 1);
        const next = start + 1 < all.length ? `<nextToken>${start + 1}</nextToken>` : "";
        inner = `${ec2Xml({ [spec[1]]: page })}${next}`;
      }
      res
        .writeHead(200, { "content-type": "text/xml;charset=UTF-8" })
        .end(
          `<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId>${inner}</${action}Response>`,
        );
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
