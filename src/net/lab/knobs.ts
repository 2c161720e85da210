/**
 * The misconfigurations an operator meets, each as a knob on a running lab
 * with its inverse: they edit the applied topology (rules, routes, hosts
 * lines), the control plane's settings (through its API) or the way the
 * control plane runs (its clock). Every knob is idempotent and recorded in
 * the state file, so `ferry lab status` shows what is currently broken.
 */
import type { HostRole, LabPlan } from "./plan.ts";
import { replicatorRoles } from "./plan.ts";
import { addRoute, addRule, deleteRoute, deleteRule, writeHostsLines } from "./network.ts";
import type { LabState } from "./state.ts";

export interface KnobHost {
  readonly plan: LabPlan;
  readonly state: LabState;
  save(): Promise<void>;
}

export type KnobName =
  | "data-plane-rule"
  | "object-store-rule"
  | "service-hosts-line"
  | "return-route"
  | "data-plane-routing"
  | "wrong-ca-fingerprint"
  | "clock-skew";

async function mark(lab: KnobHost, name: KnobName, detail: string | undefined): Promise<void> {
  if (detail === undefined) delete lab.state.knobs[name];
  else lab.state.knobs[name] = { detail };
  await lab.save();
}

function replicatorsOf(lab: KnobHost, which?: HostRole[]): HostRole[] {
  return which ?? replicatorRoles(lab.plan);
}

/** Removes "TCP 1500 from the source" on the replicators (all by default): F7 is dropped. */
export async function blockDataPlane(lab: KnobHost, replicators?: HostRole[]): Promise<void> {
  const hosts = replicatorsOf(lab, replicators);
  for (const r of lab.plan.rules.filter((x) => x.flow === "F7" && hosts.includes(x.host)))
    await deleteRule(lab.plan, r);
  await mark(lab, "data-plane-rule", `removed on ${hosts.join(", ")}`);
}

export async function allowDataPlane(lab: KnobHost): Promise<void> {
  for (const r of lab.plan.rules.filter((x) => x.flow === "F7")) await addRule(lab.plan, r);
  await mark(lab, "data-plane-rule", undefined);
}

/** Removes "TCP 443 from the source" (F1) on the object-store endpoint; `replicators` too removes F6. */
export async function blockObjectStore(
  lab: KnobHost,
  from: "source" | "replicators" | "all" = "source",
): Promise<void> {
  const flows = from === "source" ? ["F1"] : from === "replicators" ? ["F6"] : ["F1", "F6"];
  for (const r of lab.plan.rules.filter((x) => x.host === "objectStore" && flows.includes(x.flow)))
    await deleteRule(lab.plan, r);
  await mark(lab, "object-store-rule", `443 from ${from} removed`);
}

export async function allowObjectStore(lab: KnobHost): Promise<void> {
  for (const r of lab.plan.rules.filter((x) => x.host === "objectStore")) await addRule(lab.plan, r);
  await mark(lab, "object-store-rule", undefined);
}

/** Removes the service name's line from a host's hosts file (the source by default): F3. */
export async function removeServiceHostsLine(lab: KnobHost, host: HostRole = "source"): Promise<void> {
  const lines = lab.plan.hostsLines[host] ?? [];
  const name = lab.plan.names.service;
  await writeHostsLines(
    lab.plan,
    host,
    lines.filter((l) => !l.split(/\s+/).slice(1).includes(name)),
  );
  await mark(lab, "service-hosts-line", `${name} removed from ${host}'s hosts file`);
}

export async function restoreServiceHostsLine(lab: KnobHost): Promise<void> {
  for (const [host, lines] of Object.entries(lab.plan.hostsLines))
    if (lines) await writeHostsLines(lab.plan, host as HostRole, lines);
  await mark(lab, "service-hosts-line", undefined);
}

/**
 * Removes the route back to the source network (staging → source) on the
 * given staging hosts, by default all of them (the staging subnet's route
 * table): packets reach them, replies do not leave.
 */
export async function removeReturnRoute(lab: KnobHost, hosts?: HostRole[]): Promise<void> {
  const routes = lab.plan.routes.filter((r) => r.returnRoute && (!hosts || hosts.includes(r.host)));
  for (const r of routes) await deleteRoute(lab.plan, r.host, r.to);
  await mark(lab, "return-route", `removed on ${routes.map((r) => r.host).join(", ")}`);
}

export async function restoreReturnRoute(lab: KnobHost): Promise<void> {
  for (const r of lab.plan.routes.filter((x) => x.returnRoute)) await addRoute(lab.plan, r.host, r.to, r.via);
  await mark(lab, "return-route", undefined);
}

export { mark as markKnob };
