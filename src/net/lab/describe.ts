/** What `ferry lab status` and `ferry lab up` print, and `ferry lab down`'s selection of labs. */
import type { LabState } from "./state.ts";
import { listStates, loadState } from "./state.ts";
import { alive, processNamespace, namedNamespace, tryRun } from "./system.ts";
import { orphanNamespaces, tearDown, type TeardownReport } from "./teardown.ts";

export function describeLab(s: LabState): string[] {
  const lines = [`Lab ${s.id} (${s.dir})${s.ownerPid ? `, owned by pid ${s.ownerPid}` : ""}`];
  for (const h of s.plan.hosts) lines.push(`  ${h.role.padEnd(12)} ${h.ns.padEnd(26)} ${h.address}`);
  for (const r of s.plan.rules)
    lines.push(`  rule  ${r.host}: tcp ${r.port} from ${r.from} (${r.flow}, ${r.what})`);
  const e = s.endpoints;
  if (e) {
    lines.push(
      `  service API endpoint: ${e.controlPlane.endpoint}  CA fingerprint ${e.controlPlane.caFingerprint}`,
    );
    lines.push(`  object store:         https://${e.objectStore.endpoint}  (CA ${e.objectStore.caFile})`);
    lines.push(`  installer:            ${e.objectStore.installerUrl}`);
    for (const r of e.replicators) lines.push(`  ${r.role}: ${r.privateAddress} (public ${r.publicAddress})`);
    lines.push(`  install key:          ${e.keys.install.accessKeyId} / ${e.keys.install.secretAccessKey}`);
    lines.push(`  operator key:         ${e.keys.operator.accessKeyId} / ${e.keys.operator.secretAccessKey}`);
  }
  const source = s.plan.hosts.find((h) => h.role === "source");
  if (source) lines.push(`  a shell on the source: ip netns exec ${source.ns} bash`);
  for (const [k, v] of Object.entries(s.knobs))
    lines.push(`  knob turned: ${k}${v.detail ? ` (${v.detail})` : ""}`);
  return lines;
}

export interface LabStatus {
  state: LabState;
  processes: { name: string; pid: number; running: boolean }[];
}

export async function labStatus(
  id: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LabStatus[]> {
  const states = id
    ? [await loadState(id, env)].filter((s): s is LabState => s !== undefined)
    : await listStates(env);
  return states.map((state) => ({
    state,
    processes: state.processes.map((p) => ({
      name: p.name,
      pid: p.pid,
      running: alive(p.pid) && processNamespace(p.pid) === namedNamespace(p.ns),
    })),
  }));
}

export interface DownResult {
  labs: TeardownReport[];
  skipped: string[];
  orphanNamespaces: string[];
}

/**
 * The labs `ferry lab down` removes: the one named, or every lab made by
 * hand and every lab whose owning process is gone; with `all`, every lab, and
 * namespaces named like a lab's that no state file claims.
 */
export async function downLabs(o: {
  id?: string;
  all?: boolean;
  env?: NodeJS.ProcessEnv;
}): Promise<DownResult> {
  const env = o.env ?? process.env;
  const result: DownResult = { labs: [], skipped: [], orphanNamespaces: [] };
  const states = await listStates(env);
  for (const s of states) {
    if (o.id && s.id !== o.id) continue;
    if (!o.id && !o.all && s.ownerPid !== undefined && alive(s.ownerPid)) {
      result.skipped.push(s.id);
      continue;
    }
    result.labs.push(await tearDown(s, env));
  }
  // Namespaces no state file claims can only come from a run that died before its first save, or
  // from another registry (FERRY_LAB_STATE_DIR): removed only when asked for everything.
  if (!o.id && o.all) {
    for (const ns of await orphanNamespaces(new Set(states.map((s) => s.id)))) {
      const pids = await tryRun("ip", ["netns", "pids", ns]);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone
        }
      }
      if ((await tryRun("ip", ["netns", "del", ns])).code === 0) result.orphanNamespaces.push(ns);
    }
  }
  return result;
}
