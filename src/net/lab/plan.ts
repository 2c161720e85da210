/**
 * The reference private-network topology as data: namespaces, links,
 * addresses, routes, hosts lines and "security group" rules. Pure — nothing
 * here touches the system; network.ts applies a plan and knobs.ts edits the
 * applied one. Keeping it data makes the topology testable without root and
 * lets the docs, the CLI and the harness describe the same thing.
 */

/** A host of the lab: one network namespace. */
export type HostRole = "source" | "router" | "service" | "objectStore" | `replicator${number}`;

export interface LabHost {
  role: HostRole;
  /** Network namespace name. */
  ns: string;
  /** The host's address on its network (the router has one per network). */
  address: string;
  network: "source" | "staging" | "link";
}

/** One "security group" rule: ingress TCP `port` from `from` (a CIDR), on `host`. */
export interface IngressRule {
  host: HostRole;
  port: number;
  from: string;
  /** The flow of docs/private-network.md (and AWS MGN's) this rule opens. */
  flow: "F1" | "F2" | "F4" | "F6" | "F7";
  what: string;
}

export interface LabRoute {
  host: HostRole;
  to: string;
  via: string;
  /** The return route (staging → source) that the doctor's "missing return route" knob removes. */
  returnRoute: boolean;
}

export interface LabNames {
  region: string;
  /** The service API endpoint's name (the control plane). */
  service: string;
  /** The object-store endpoint's name (path style: https://<objectStore>/<bucket>/…). */
  objectStore: string;
  /** The suffix s3rver strips to find a virtual-hosted bucket. */
  objectStoreServiceEndpoint: string;
  bucket: string;
  /** Virtual-hosted name of the bucket: <bucket>.<objectStore>. */
  bucketHost: string;
}

export interface LabPlan {
  id: string;
  names: LabNames;
  cidr: { source: string; staging: string };
  /** The staging network as a subnet id: the template's stagingAreaSubnetId, the replicators' pool. */
  stagingSubnetId: string;
  hosts: LabHost[];
  /** Router-side addresses: the gateway of each network. */
  gateway: { source: string; staging: string };
  /** Addresses that exist nowhere on the lab (a replicator's "public IP"). */
  publicAddress: Record<string, string>;
  routes: LabRoute[];
  rules: IngressRule[];
  /** hosts-file lines per host role (the source and every staging host). */
  hostsLines: Partial<Record<HostRole, string[]>>;
}

export interface LabPlanOptions {
  /** @default 1 */
  replicators?: number;
  /** @default "us-east-1" */
  region?: string;
  /** @default "ferry.lab" */
  domain?: string;
}

export const SERVICE_PORT = 443;
export const DATA_PLANE_PORT = 1500;

/** Short, unique per lab: namespace names carry it. */
export function isLabId(id: string): boolean {
  return /^[a-z0-9]{4,12}$/.test(id);
}

export function replicatorRoles(plan: LabPlan): `replicator${number}`[] {
  return plan.hosts.map((h) => h.role).filter((r): r is `replicator${number}` => r.startsWith("replicator"));
}

export function hostOf(plan: LabPlan, role: HostRole): LabHost {
  const h = plan.hosts.find((x) => x.role === role);
  if (!h) throw new Error(`lab ${plan.id} has no host ${role}`);
  return h;
}

export function createLabPlan(id: string, o: LabPlanOptions = {}): LabPlan {
  const count = o.replicators ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 8) {
    throw new RangeError(`replicators must be 1..8, not ${count}`);
  }
  const region = o.region ?? "us-east-1";
  const domain = o.domain ?? "ferry.lab";
  const names: LabNames = {
    region,
    service: `mgn.${region}.${domain}`,
    objectStore: `s3.${region}.${domain}`,
    objectStoreServiceEndpoint: domain,
    bucket: `ferry-agent-${region}`,
    bucketHost: `ferry-agent-${region}.s3.${region}.${domain}`,
  };
  const ns = (role: string) => `ferry-lab-${id}-${role}`;
  const cidr = { source: "10.10.0.0/24", staging: "10.20.0.0/24" };
  const gateway = { source: "10.10.0.1", staging: "10.20.0.1" };
  const service = "10.20.0.10";
  const objectStore = "10.20.0.20";
  const hosts: LabHost[] = [
    { role: "source", ns: ns("src"), address: "10.10.0.10", network: "source" },
    { role: "router", ns: ns("rtr"), address: `${gateway.source},${gateway.staging}`, network: "link" },
    { role: "service", ns: ns("svc"), address: service, network: "staging" },
    { role: "objectStore", ns: ns("s3"), address: objectStore, network: "staging" },
  ];
  const publicAddress: Record<string, string> = {};
  for (let i = 1; i <= count; i++) {
    hosts.push({
      role: `replicator${i}`,
      ns: ns(`rep${i}`),
      address: `10.20.0.${29 + i}`,
      network: "staging",
    });
    // TEST-NET-2: routed nowhere, like a public IP where only the private link exists.
    publicAddress[`replicator${i}`] = `198.51.100.${29 + i}`;
  }
  const staging = hosts.filter((h) => h.network === "staging");
  const replicators = staging.filter((h) => h.role.startsWith("replicator"));
  const routes: LabRoute[] = [
    { host: "source", to: cidr.staging, via: gateway.source, returnRoute: false },
    ...staging.map((h) => ({ host: h.role, to: cidr.source, via: gateway.staging, returnRoute: true })),
  ];
  const rules: IngressRule[] = [
    {
      host: "service",
      port: SERVICE_PORT,
      from: cidr.source,
      flow: "F2",
      what: "service API from the source",
    },
    ...replicators.map((r): IngressRule => ({
      host: "service",
      port: SERVICE_PORT,
      from: `${r.address}/32`,
      flow: "F4",
      what: `service API from ${r.role}`,
    })),
    {
      host: "objectStore",
      port: SERVICE_PORT,
      from: cidr.source,
      flow: "F1",
      what: "object store from the source",
    },
    ...replicators.map((r): IngressRule => ({
      host: "objectStore",
      port: SERVICE_PORT,
      from: `${r.address}/32`,
      flow: "F6",
      what: `object store from ${r.role}`,
    })),
    ...replicators.map((r): IngressRule => ({
      host: r.role,
      port: DATA_PLANE_PORT,
      from: cidr.source,
      flow: "F7",
      what: "data plane from the source",
    })),
  ];
  const lines = [
    `${service} ${names.service}`,
    `${objectStore} ${names.objectStore}`,
    `${objectStore} ${names.bucketHost}`,
  ];
  const hostsLines: Partial<Record<HostRole, string[]>> = {};
  for (const h of hosts) if (h.network !== "link") hostsLines[h.role] = [...lines];
  // The network's address in hex (10.20.0.0 → 0a140000), shaped like a subnet id.
  const stagingSubnetId = `subnet-${cidr.staging
    .split("/")[0]!
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join("")}`;
  return { id, names, cidr, stagingSubnetId, hosts, gateway, publicAddress, routes, rules, hostsLines };
}

/** The iptables arguments (after -A/-D/-C and the chain) of an ingress rule. */
export function ruleArgs(rule: IngressRule): string[] {
  return [
    "-p",
    "tcp",
    "-s",
    rule.from,
    "--dport",
    String(rule.port),
    "-m",
    "comment",
    "--comment",
    `ferry-lab ${rule.flow}: ${rule.what}`,
    "-j",
    "ACCEPT",
  ];
}

/** The hosts file of a host: localhost plus the plan's lines. */
export function hostsFile(lines: readonly string[]): string {
  return ["127.0.0.1 localhost", "::1 localhost", ...lines, ""].join("\n");
}
