/**
 * Removes a lab by its state record, each step idempotent and checked
 * against the record so only what the lab made is touched: its processes (by
 * pid, only while that pid still lives in the lab's namespace), anything
 * else left running in its namespaces, its loop devices (only while backed
 * by its image), the namespaces (their veths, bridge, routes and iptables
 * rules go with them), its /etc/netns entries, its directory and the state
 * file. A second teardown finds nothing to do.
 */
import { readFile, rm, rmdir } from "node:fs/promises";
import { basename } from "node:path";
import type { LabState } from "./state.ts";
import { removeState } from "./state.ts";
import { NETNS_ETC } from "./network.ts";
import { alive, namedNamespace, processNamespace, run, sleep, tryRun } from "./system.ts";

export interface TeardownReport {
  id: string;
  killed: number[];
  namespaces: string[];
  loops: string[];
  errors: string[];
}

/** Ends a process of the lab: SIGTERM, then SIGKILL after `graceMs`; bounded. */
export async function endProcess(pid: number, ns: string, graceMs = 3000): Promise<boolean> {
  const inNs = () => {
    const want = namedNamespace(ns);
    return alive(pid) && want !== undefined && processNamespace(pid) === want;
  };
  if (!inNs()) return false;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return false;
  }
  for (let waited = 0; waited < graceMs && alive(pid); waited += 100) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
    for (let waited = 0; waited < 5000 && alive(pid); waited += 100) await sleep(100);
  }
  return true;
}

export async function tearDown(
  state: LabState,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TeardownReport> {
  const report: TeardownReport = { id: state.id, killed: [], namespaces: [], loops: [], errors: [] };
  const note = (what: string, err: unknown) =>
    report.errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);

  await Promise.all(
    state.processes.map(async (p) => {
      try {
        if (await endProcess(p.pid, p.ns)) report.killed.push(p.pid);
      } catch (err) {
        note(`process ${p.name} (${p.pid})`, err);
      }
    }),
  );
  // Whatever else runs inside (children of ours, a command still going): the namespace is ours.
  for (const ns of state.namespaces) {
    const r = await tryRun("ip", ["netns", "pids", ns]);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, "SIGKILL");
        report.killed.push(pid);
      } catch {
        // gone
      }
    }
  }
  for (const loop of state.loops) {
    try {
      const name = basename(loop.device);
      const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, "utf8").catch(() => "")).trim();
      // The device may have been reused by someone else since: detach only while it is still ours.
      if (backing === loop.image || backing === `${loop.image} (deleted)`) {
        await run("losetup", ["-d", loop.device]);
        report.loops.push(loop.device);
      }
    } catch (err) {
      note(`loop device ${loop.device}`, err);
    }
  }
  for (const ns of [...state.namespaces].reverse()) {
    if (namedNamespace(ns) === undefined) continue;
    // A namespace whose last process is still exiting may refuse deletion for a moment.
    let last = "";
    for (let attempt = 0; attempt < 20; attempt++) {
      const r = await tryRun("ip", ["netns", "del", ns]);
      if (r.code === 0 || namedNamespace(ns) === undefined) {
        report.namespaces.push(ns);
        last = "";
        break;
      }
      last = r.stderr.trim();
      await sleep(100);
    }
    if (last) note(`namespace ${ns}`, last);
  }
  for (const dir of state.hostsDirs) {
    // Only the lab's own entries: /etc/netns/ferry-lab-<id>-<role>.
    if (!dir.startsWith(`${NETNS_ETC}/ferry-lab-${state.id}-`)) continue;
    await rm(dir, { recursive: true, force: true }).catch((err: unknown) => note(dir, err));
  }
  if (state.dir && basename(state.dir).startsWith(`ferry-lab-${state.id}`)) {
    await rm(state.dir, { recursive: true, force: true }).catch((err: unknown) => note(state.dir, err));
  }
  if (report.errors.length === 0) await removeState(state.id, env);
  // /etc/netns itself only if this lab made it, and only when nothing else has an entry left there.
  if (state.createdNetnsEtc) await rmdir(NETNS_ETC).catch(() => {});
  return report;
}

/** Namespaces named like a lab's whose lab has no state file (a crash before the first save). */
export async function orphanNamespaces(knownIds: ReadonlySet<string>): Promise<string[]> {
  const r = await tryRun("ip", ["netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => {
      const m = /^ferry-lab-([a-z0-9]+)-[a-z0-9]+$/.exec(n);
      return m !== null && !knownIds.has(m[1]!);
    });
}
