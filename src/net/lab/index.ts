/**
 * The lab: the reference private-network setup on one machine (plan.ts the
 * topology as data, network.ts builds it, services.ts starts the processes,
 * knobs.ts the misconfigurations, teardown.ts removes it by the state record
 * of state.ts). `startLab` builds and starts everything and returns a Lab
 * (lab.ts); `openLab` attaches to one already up (`ferry lab up`, another
 * process). Requires root.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { DEFAULT_REPLICATION_SETTINGS } from "../../model/replication-configuration.ts";
import type { LabPlanOptions } from "./plan.ts";
import { createLabPlan } from "./plan.ts";
import { createNetwork } from "./network.ts";
import { Lab } from "./lab.ts";
import type { LabState } from "./state.ts";
import { listStates, loadState } from "./state.ts";
import { createAccessKey, startControlPlane, startObjectStore, startReplicators } from "./services.ts";
import { alive } from "./system.ts";
import { tearDown, type TeardownReport } from "./teardown.ts";

export { Lab } from "./lab.ts";
export type { LabEndpoints, LabProcess, LabState } from "./state.ts";
export type { HostRole } from "./plan.ts";

export interface LabOptions extends LabPlanOptions {
  /** Where the lab's directory is made. @default os.tmpdir() */
  parentDir?: string;
  /** A process whose death makes the lab stale (a test run); none for `ferry lab up`. */
  ownerPid?: number;
  /** Start the object store, the control plane and the replicators. @default true */
  services?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * The control plane's --agent-not-seen-after: tests that wait for
   * AGENT_NOT_SEEN make it short (above the agents' 10 s report interval).
   * @default 60
   */
  agentNotSeenAfterSeconds?: number;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new FerryError(
      "LAB_NEEDS_ROOT",
      "the lab creates network namespaces, veth pairs, firewall rules and loop devices: run it as root (sudo ferry lab …)",
    );
  }
}

/** Builds the topology, starts the services, and returns the lab; on failure, tears down what was made. */
export async function startLab(o: LabOptions = {}): Promise<Lab> {
  requireRoot();
  const env = o.env ?? process.env;
  await reapStaleLabs(env);
  const id = randomBytes(4).toString("hex").slice(0, 6);
  const dir = await mkdtemp(join(o.parentDir ?? tmpdir(), `ferry-lab-${id}-`));
  const state: LabState = {
    version: 1,
    id,
    dir,
    createdAt: new Date().toISOString(),
    ...(o.ownerPid ? { ownerPid: o.ownerPid } : {}),
    plan: createLabPlan(id, o),
    namespaces: [],
    hostsDirs: [],
    processes: [],
    loops: [],
    knobs: {},
  };
  const lab = new Lab(state, env);
  try {
    await lab.save();
    await createNetwork(state, () => lab.save());
    const source = join(dir, "source");
    await mkdir(join(source, "fake-root", "sys", "block"), { recursive: true });
    await mkdir(join(source, "fake-root", "proc", "self"), { recursive: true });
    await writeFile(join(source, "fake-root", "proc", "self", "mountinfo"), "");
    await writeFile(join(source, "machine-id"), `${randomBytes(16).toString("hex")}\n`);
    if (o.services === false) return lab;
    const [objectStore, controlPlane] = await Promise.all([
      startObjectStore(lab),
      startControlPlane(lab, 0, o.agentNotSeenAfterSeconds),
    ]);
    const [operator, install, replicator] = await Promise.all(
      (["operator", "install", "replicator"] as const).map((scope) =>
        createAccessKey(controlPlane.dataDir, state.plan.names.region, scope),
      ),
    );
    state.endpoints = {
      controlPlane,
      objectStore,
      keys: { operator: operator!, install: install!, replicator: replicator! },
      replicators: [],
    };
    await lab.save();
    await lab.mgn("InitializeService", {});
    // The reference setup's replication template: the staging network, "use private IP for data replication".
    await lab.mgn("CreateReplicationConfigurationTemplate", {
      ...DEFAULT_REPLICATION_SETTINGS,
      stagingAreaSubnetId: state.plan.stagingSubnetId,
      dataPlaneRouting: "PRIVATE_IP",
      createPublicIP: false,
      tags: { "ferry-lab": id },
    });
    state.endpoints.replicators = await startReplicators(lab, controlPlane, replicator!);
    await lab.save();
    return lab;
  } catch (err) {
    await tearDown(state, env).catch(() => {});
    throw err;
  }
}

/** Attaches to a lab that is up (by id), to turn knobs or read its endpoints. */
export async function openLab(id: string, env: NodeJS.ProcessEnv = process.env): Promise<Lab> {
  const state = await loadState(id, env);
  if (!state)
    throw new FerryError("LAB_NOT_FOUND", `no lab ${id} (ferry lab status lists the labs that are up)`);
  return new Lab(state, env);
}

/** Labs whose owning process is gone: left by a crashed or killed test run. */
export async function reapStaleLabs(env: NodeJS.ProcessEnv = process.env): Promise<TeardownReport[]> {
  const out: TeardownReport[] = [];
  for (const s of await listStates(env)) {
    if (s.ownerPid !== undefined && !alive(s.ownerPid)) out.push(await tearDown(s, env));
  }
  return out;
}
