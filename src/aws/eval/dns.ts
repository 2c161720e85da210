/**
 * F3: how the source resolves mgn.<region>.amazonaws.com. Either hosts lines
 * that map the names to the endpoint ENIs' private IPs, or a Route 53
 * Resolver inbound endpoint in the staging VPC that is operational and
 * reachable from the source on TCP and UDP 53.
 */
import { tryParseCidr } from "../model/cidr.ts";
import type { NetworkInterface, SecurityGroup } from "../model/ec2-shapes.ts";
import { findGroup, findSubnet } from "../model/inventory.ts";
import { type CheckContext, inputMissing } from "./context.ts";
import type { Finding } from "./findings.ts";
import { evaluatePath, type Party } from "./path.ts";

/** Parses /etc/hosts text into name → addresses (first line for a name wins, as the resolver does). */
export function parseHosts(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [ip, ...names] = line.split(/\s+/);
    if (!ip) continue;
    for (const name of names) if (!out.has(name.toLowerCase())) out.set(name.toLowerCase(), ip);
  }
  return out;
}

/** The hosts lines the source needs: one per service name, to the first endpoint ENI. */
export function hostsLines(
  region: string,
  mgnEnis: NetworkInterface[],
  ec2Enis: NetworkInterface[],
): string[] {
  const lines: string[] = [];
  const mgn = mgnEnis.find((e) => e.PrivateIpAddress)?.PrivateIpAddress;
  const ec2 = ec2Enis.find((e) => e.PrivateIpAddress)?.PrivateIpAddress;
  if (mgn) lines.push(`${mgn} mgn.${region}.amazonaws.com`);
  if (ec2) lines.push(`${ec2} ec2.${region}.amazonaws.com`);
  return lines;
}

export interface DnsInput {
  hostsText: string | undefined;
  hostsFile: string;
  mgnEnis: NetworkInterface[];
  ec2Enis: NetworkInterface[];
  source: Party;
  stagingVpcId: string;
}

/** Hosts-file route to F3: the mgn name is required, the ec2 name must be right when present. */
function hostsFindings(ctx: CheckContext, input: DnsInput, hosts: string): Finding[] {
  const map = parseHosts(hosts);
  const out: Finding[] = [];
  const wanted: [string, NetworkInterface[], boolean][] = [
    [`mgn.${ctx.region}.amazonaws.com`, input.mgnEnis, true],
    [`ec2.${ctx.region}.amazonaws.com`, input.ec2Enis, false],
  ];
  for (const [name, enis, required] of wanted) {
    const ip = map.get(name);
    const ips = enis.flatMap((e) => (e.PrivateIpAddress ? [e.PrivateIpAddress] : []));
    const line = ips[0] ? `${ips[0]} ${name}` : undefined;
    if (ip === undefined) {
      if (!required) continue;
      out.push({
        rule: "F3-DNS",
        code: "DNS_HOSTS_LINE_MISSING",
        resources: [input.hostsFile],
        found: `${input.hostsFile} has no line for ${name}`,
        fix: line
          ? `add to ${input.hostsFile}: ${line}`
          : `create the ${name.split(".")[0]} interface endpoint first (EP-01)`,
      });
    } else if (ips.length > 0 && !ips.includes(ip)) {
      out.push({
        rule: "F3-DNS",
        code: "DNS_HOSTS_WRONG_ADDRESS",
        resources: [input.hostsFile, ...enis.map((e) => e.NetworkInterfaceId)],
        found: `${input.hostsFile} maps ${name} to ${ip}; the endpoint ENIs have ${ips.join(", ")}`,
        fix: `replace the line in ${input.hostsFile} with: ${line ?? ""}`,
      });
    }
  }
  return out;
}

function resolverParty(
  ctx: CheckContext,
  id: string,
  vpcId: string,
  subnetId: string,
  ip: string,
  groupIds: string[],
): Party {
  const c = tryParseCidr(ip);
  return {
    id,
    vpcId,
    subnetId,
    cidrs: c ? [c] : [],
    groups: groupIds.map((g) => findGroup(ctx.inv, g)).filter((g): g is SecurityGroup => g !== undefined),
  };
}

/** F3 findings (the caller adds TOPO-02/EP-01 private DNS when the resolver route is taken). */
export function dnsFindings(
  ctx: CheckContext,
  input: DnsInput,
): { findings: Finding[]; viaResolver: boolean } {
  if (input.hostsText !== undefined)
    return { findings: hostsFindings(ctx, input, input.hostsText), viaResolver: false };
  if (ctx.inv.resolverEndpoints === undefined) {
    return {
      findings: [
        inputMissing("F3-DNS", "list-resolver-endpoints.json", "name resolution without --source-hosts"),
      ],
      viaResolver: true,
    };
  }
  const inbound = ctx.inv.resolverEndpoints.filter(
    (r) => r.Direction === "INBOUND" && r.HostVPCId === input.stagingVpcId,
  );
  if (inbound.length === 0) {
    const lines = hostsLines(ctx.region, input.mgnEnis, input.ec2Enis);
    return {
      findings: [
        {
          rule: "F3-DNS",
          code: "DNS_NO_RESOLUTION_PATH",
          resources: [input.stagingVpcId],
          found: `no --source-hosts given and no Route 53 Resolver inbound endpoint in ${input.stagingVpcId}: the source resolves mgn.${ctx.region}.amazonaws.com to public addresses`,
          fix: lines.length
            ? `add to the source's /etc/hosts: ${lines.join("; ")} (or create an inbound resolver endpoint: ferry aws plan --dns resolver)`
            : `create the mgn interface endpoint, then add hosts lines or an inbound resolver endpoint`,
        },
      ],
      viaResolver: true,
    };
  }
  const findings: Finding[] = [];
  for (const r of inbound) {
    if (r.Status !== "OPERATIONAL") {
      findings.push({
        rule: "F3-DNS",
        code: "RESOLVER_ENDPOINT_NOT_OPERATIONAL",
        resources: [r.Id],
        found: `inbound resolver endpoint ${r.Id} is ${r.Status}${r.StatusMessage ? ` (${r.StatusMessage})` : ""}`,
        fix: `wait for ${r.Id} to become OPERATIONAL, or aws route53resolver delete-resolver-endpoint --resolver-endpoint-id ${r.Id} and create it again`,
      });
    }
    const file = `list-resolver-endpoint-ip-addresses-${r.Id}.json`;
    const ips = ctx.inv.resolverIpAddresses.get(r.Id);
    if (!ips) {
      findings.push(inputMissing("F3-DNS", file, `reachability of ${r.Id} on port 53`));
      continue;
    }
    for (const addr of ips) {
      if (!findSubnet(ctx.inv, addr.SubnetId)) continue;
      const to = resolverParty(ctx, r.Id, r.HostVPCId, addr.SubnetId, addr.Ip, r.SecurityGroupIds);
      for (const protocol of ["udp", "tcp"] as const) {
        findings.push(...evaluatePath(ctx, { rule: "F3-DNS", protocol, port: 53, from: input.source, to }));
      }
    }
  }
  return { findings, viaResolver: true };
}
