/**
 * Applies a LabPlan to the system: namespaces, veth pairs (created straight
 * into their namespaces, so nothing is ever left in the host's), the router's
 * staging bridge, addresses, routes (no default route anywhere), per-host
 * iptables ingress rules and /etc/netns/<ns>/hosts files. Every creation is
 * recorded in the state before it happens; teardown.ts undoes by that record.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { HostRole, IngressRule, LabHost, LabPlan } from "./plan.ts";
import { hostOf, hostsFile, ruleArgs } from "./plan.ts";
import type { LabState } from "./state.ts";
import { nsRun, nsTryRun, run } from "./system.ts";

export const NETNS_ETC = "/etc/netns";

/** The router-side interface name of a host's link. */
function routerPort(h: LabHost): string {
  return h.role === "source"
    ? "src"
    : h.role === "objectStore"
      ? "s3"
      : h.role === "service"
        ? "svc"
        : h.role.replace("replicator", "rep");
}

export async function createNetwork(state: LabState, save: () => Promise<void>): Promise<void> {
  const plan = state.plan;
  for (const h of plan.hosts) {
    state.namespaces.push(h.ns);
    await save();
    await run("ip", ["netns", "add", h.ns]);
    await run("ip", ["-n", h.ns, "link", "set", "lo", "up"]);
  }
  const router = hostOf(plan, "router").ns;
  await run("ip", ["netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  // The staging network is a bridge in the router: its hosts share one L2 segment, like a subnet.
  await run("ip", ["-n", router, "link", "add", "stg", "type", "bridge"]);
  await run("ip", ["-n", router, "addr", "add", `${plan.gateway.staging}/24`, "dev", "stg"]);
  await run("ip", ["-n", router, "link", "set", "stg", "up"]);
  for (const h of plan.hosts) {
    if (h.role === "router") continue;
    const port = routerPort(h);
    await run("ip", [
      "link",
      "add",
      "eth0",
      "netns",
      h.ns,
      "type",
      "veth",
      "peer",
      "name",
      port,
      "netns",
      router,
    ]);
    await run("ip", ["-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0"]);
    await run("ip", ["-n", h.ns, "link", "set", "eth0", "up"]);
    if (h.network === "source") {
      await run("ip", ["-n", router, "addr", "add", `${plan.gateway.source}/24`, "dev", port]);
    } else {
      await run("ip", ["-n", router, "link", "set", port, "master", "stg"]);
    }
    await run("ip", ["-n", router, "link", "set", port, "up"]);
  }
  for (const r of plan.routes) await addRoute(plan, r.host, r.to, r.via);
  for (const h of plan.hosts) {
    if (h.role === "router") continue;
    await baseFirewall(h.ns);
  }
  for (const rule of plan.rules) await addRule(plan, rule);
  if (!existsSync(NETNS_ETC)) state.createdNetnsEtc = true;
  for (const h of plan.hosts) {
    const lines = plan.hostsLines[h.role];
    if (!lines) continue;
    const dir = join(NETNS_ETC, h.ns);
    state.hostsDirs.push(dir);
    await save();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "hosts"), hostsFile(lines));
  }
}

/** Stateful ingress, like a security group: loopback and replies in, new connections only by rule. */
async function baseFirewall(ns: string): Promise<void> {
  const ipt = (args: string[]) => nsRun(ns, "iptables", ["-w", "5", ...args]);
  await ipt(["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]);
  await ipt(["-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]);
  await ipt(["-P", "INPUT", "DROP"]);
}

export async function ruleExists(plan: LabPlan, rule: IngressRule): Promise<boolean> {
  const r = await nsTryRun(hostOf(plan, rule.host).ns, "iptables", [
    "-w",
    "5",
    "-C",
    "INPUT",
    ...ruleArgs(rule),
  ]);
  return r.code === 0;
}

/** Adds an ingress rule (once: adding a present rule does nothing). */
export async function addRule(plan: LabPlan, rule: IngressRule): Promise<void> {
  if (await ruleExists(plan, rule)) return;
  await nsRun(hostOf(plan, rule.host).ns, "iptables", ["-w", "5", "-A", "INPUT", ...ruleArgs(rule)]);
}

/** Removes an ingress rule; true when it was there. */
export async function deleteRule(plan: LabPlan, rule: IngressRule): Promise<boolean> {
  if (!(await ruleExists(plan, rule))) return false;
  await nsRun(hostOf(plan, rule.host).ns, "iptables", ["-w", "5", "-D", "INPUT", ...ruleArgs(rule)]);
  return true;
}

export async function addRoute(plan: LabPlan, host: HostRole, to: string, via: string): Promise<void> {
  await run("ip", ["-n", hostOf(plan, host).ns, "route", "replace", to, "via", via]);
}

export async function deleteRoute(plan: LabPlan, host: HostRole, to: string): Promise<boolean> {
  const ns = hostOf(plan, host).ns;
  const present = (await run("ip", ["-n", ns, "route", "show", to])).trim() !== "";
  if (present) await run("ip", ["-n", ns, "route", "del", to]);
  return present;
}

/**
 * Rewrites a host's hosts file in place (same inode: processes already
 * running in the namespace see the change, as with an edited /etc/hosts).
 */
export async function writeHostsLines(
  plan: LabPlan,
  host: HostRole,
  lines: readonly string[],
): Promise<void> {
  await writeFile(join(NETNS_ETC, hostOf(plan, host).ns, "hosts"), hostsFile(lines));
}
