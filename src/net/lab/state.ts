/**
 * The lab's state file: everything a lab created (namespaces, hosts files,
 * processes, loop devices, its directory), written before and after each
 * step, so `ferry lab down` removes by id what a crashed run left behind.
 * One file per lab in the registry directory (FERRY_LAB_STATE_DIR, else
 * /run/ferry-lab: gone at reboot, like the namespaces themselves).
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { IngressRule, LabPlan } from "./plan.ts";
import { isLabId } from "./plan.ts";

export interface LabProcess {
  /** What it is: "object-store", "control-plane", "replicator1", or a name the caller gave. */
  name: string;
  pid: number;
  ns: string;
  stdoutFile: string;
  stderrFile: string;
}

export interface LabKey {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What the lab's services are, once up. */
export interface LabEndpoints {
  controlPlane: {
    /** https://<service name> (port 443). */
    endpoint: string;
    caFile: string;
    caFingerprint: string;
    dataDir: string;
    /** `ferry server --agent-not-seen-after`: a silent agent shows AGENT_NOT_SEEN after this long. */
    agentNotSeenAfterSeconds: number;
  };
  objectStore: {
    /** The --s3-endpoint value: the object-store name. */
    endpoint: string;
    /** The lab CA that issued the object store's certificate. */
    caFile: string;
    bucket: string;
    installerUrl: string;
    credentials: LabKey;
    dataDir: string;
  };
  keys: { operator: LabKey; install: LabKey; replicator: LabKey };
  replicators: {
    role: string;
    name: string;
    privateAddress: string;
    publicAddress: string;
    dataDir: string;
    replicatorId?: string;
  }[];
}

export interface LabState {
  version: 1;
  id: string;
  /** The lab's own directory (logs, data dirs, certificates); removed at teardown. */
  dir: string;
  createdAt: string;
  /** The process that owns the lab (a test run); none for `ferry lab up`. */
  ownerPid?: number;
  plan: LabPlan;
  namespaces: string[];
  hostsDirs: string[];
  /** Whether /etc/netns did not exist before this lab. */
  createdNetnsEtc?: boolean;
  processes: LabProcess[];
  loops: { device: string; image: string }[];
  endpoints?: LabEndpoints;
  /** Knobs currently turned, by name, with what is needed to undo them. */
  knobs: Record<string, { removedRules?: IngressRule[]; detail?: string }>;
}

export function registryDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_LAB_STATE_DIR ?? "/run/ferry-lab";
}

export function stateFile(id: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(registryDir(env), `${id}.json`);
}

/** Writes the state atomically (a crash leaves the old or the new file, never half of one). */
export async function saveState(state: LabState, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await mkdir(registryDir(env), { recursive: true, mode: 0o700 });
  const file = stateFile(state.id, env);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function loadState(
  id: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LabState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile(id, env), "utf8")) as LabState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export async function listStates(env: NodeJS.ProcessEnv = process.env): Promise<LabState[]> {
  let names: string[];
  try {
    names = await readdir(registryDir(env));
  } catch {
    return [];
  }
  const out: LabState[] = [];
  for (const n of names) {
    const id = n.replace(/\.json$/, "");
    if (!n.endsWith(".json") || !isLabId(id)) continue;
    const s = await loadState(id, env).catch(() => undefined);
    if (s) out.push(s);
  }
  return out;
}

export async function removeState(id: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await rm(stateFile(id, env), { force: true });
}
