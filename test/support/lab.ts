/**
 * The reference private-network setup as a test environment (the logic is in
 * src/net/lab; `ferry lab up|down|status` runs the same by hand). Requires
 * root, iproute2, iptables and curl; `labUnavailable()` says why not.
 *
 *   source network 10.10.0.0/24          private link           staging network 10.20.0.0/24
 *   source  10.10.0.10 ── router 10.10.0.1 | 10.20.0.1 ── service API endpoint 10.20.0.10:443  (ferry server)
 *                                                       ├─ object-store endpoint 10.20.0.20:443 (s3rver, TLS)
 *                                                       └─ replicatorN 10.20.0.(29+N):1500      (ferry replicator --join)
 *
 * No default route anywhere. Each host drops new inbound connections except
 * by rule (stateful, like a security group): 443 on the endpoints from the
 * source network and each replicator, 1500 on each replicator from the source
 * network. Hosts files (/etc/netns/<ns>/hosts) map `mgn.<region>.ferry.lab`,
 * `s3.<region>.ferry.lab` and `ferry-agent-<region>.s3.<region>.ferry.lab`
 * to the endpoints. Everything is torn down by the lab's state record in
 * `close()` — call it in `finally`/`after` — and, if the test process exits
 * without it, by `ferry lab down <id>` from an exit hook; a lab whose test
 * run died is reaped by the next `createLab` or `ferry lab down`.
 *
 * Using it (all on the returned `Lab`, see src/net/lab/lab.ts):
 *   lab.endpoints            control plane (endpoint, caFile, caFingerprint, dataDir), object store,
 *                            keys (operator, install, replicator), replicators (addresses, data dirs)
 *   lab.exec(role, cmd, args, {env, input, timeoutMs})   a bounded command inside a host
 *   lab.spawn(role, name, cmd, args, env) / lab.stop(name) / lab.process(name)   long-running, logged
 *   lab.addSourceDisk(bytes) → {image, device}           a loop device on the source host
 *   lab.sourceEnv()          env for programs run as the source (machine id, empty /sys, node on PATH)
 *   lab.publishAgentPackage()                            `ferry release build|publish` to the object store
 *   lab.installerArgs({devices, installDir, resolve?})   ferry-installer-init's arguments
 *   lab.mgn(operation, body, {from})                     an MGN API call (SigV4, curl) from a host
 *   lab.sourceServers()      the control plane's store read directly (works while the clock is skewed)
 *
 * Knobs (each idempotent, each with its inverse; `lab.state.knobs` lists those turned):
 *   blockDataPlane(replicators?)     / allowDataPlane()          remove "1500 from the source" on the replicators (F7)
 *   blockObjectStore(from?)          / allowObjectStore()        remove "443 from the source" (F1; "replicators": F6, "all")
 *   removeServiceHostsLine(host?)    / restoreServiceHostsLine() the service name's line gone from the source's hosts file (F3)
 *   removeReturnRoute(hosts?)        / restoreReturnRoute()      staging → source route gone (all staging hosts by default)
 *   setDataPlaneRouting("PUBLIC_IP", id?) / setDataPlaneRouting("PRIVATE_IP", id?)
 *        one server's replication configuration, or (no id) every template; replicators are
 *        registered with a public address in TEST-NET-2 (198.51.100.x) that nothing routes
 *   useWrongCaFingerprint()          / useRightCaFingerprint()   `agentCaFingerprint` and `installerArgs` carry another CA's
 *   skewServerClock(seconds)         / restoreServerClock()      restart `ferry server` with its clock off
 *        (FERRY_TEST_CLOCK_SKEW_SECONDS, read in src/cli/server.ts); beyond 5 minutes every signed
 *        request is refused, the lab's own `mgn()` calls too, until restored
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { type Lab, startLab, type LabOptions } from "../../src/net/lab/index.ts";

export type { Lab } from "../../src/net/lab/index.ts";

const MAIN = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");
const open = new Set<string>();

process.once("exit", () => {
  // Last resort (a cancelled test): the same teardown as by hand, synchronously.
  for (const id of open) {
    try {
      execFileSync(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "lab", "down", id], {
        stdio: "ignore",
        timeout: 60_000,
      });
    } catch {
      // nothing more can be done from an exit hook; `ferry lab down` finds it later
    }
  }
});

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const cmd of ["ip", "iptables", "curl", "losetup"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    } catch {
      return `${cmd} is not installed`;
    }
  }
  return undefined;
}

/** Starts a lab owned by this process; `close()` it in `finally` whatever happens. */
export async function createLab(options: Omit<LabOptions, "ownerPid"> = {}): Promise<Lab> {
  const lab = await startLab({ ...options, ownerPid: process.pid });
  open.add(lab.id);
  const close = lab.close.bind(lab);
  lab.close = async () => {
    const report = await close();
    if (report.errors.length === 0) open.delete(lab.id);
    return report;
  };
  return lab;
}
