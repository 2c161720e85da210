/**
 * `ferry doctor --source`: every flow a source server needs, in the order an
 * operator meets them — F3 (the endpoints' names), F1 (where the installer
 * gets the package: the object store, or the control plane without an object
 * store), F2 (the service: TCP, TLS and the CA pin,
 * the clock, a signed call) and F7 (the assigned replicator on the address
 * `dataPlaneRouting` selects, the return path, the pairing, a short
 * throughput probe).
 */
import type { SignedClientCredentials } from "../../lib/signed-client.ts";
import type { StaticHosts } from "../../lib/static-resolve.ts";
import type { AgentAssignmentResponse } from "../../model/agent-api.ts";
import type { ReplicatorAssignment } from "../../model/replicator.ts";
import { type DoctorFinding, type FlowRun, hasFailed, newRun, passed, summarize } from "./checks.ts";
import { checkControlPlanePackage } from "./control-package.ts";
import { checkDataPlane } from "./data-plane.ts";
import { checkClock, checkSignedCall, checkTcpTls } from "./endpoint.ts";
import { checkNames } from "./names.ts";
import { type ObjectStoreTarget, checkObjectStore, hostPort, objectStoreName } from "./object-store.ts";

/** The installer's package, whose hash file the F1 check fetches. */
export { AGENT_PACKAGE_FILE } from "./object-store.ts";

export interface SourceDoctorOptions {
  /** The control plane, https://host[:port]. */
  endpoint: string;
  region: string;
  /** The install key (before registration) or the agent's own key. */
  credentials?: SignedClientCredentials;
  caPem?: string;
  caFingerprint?: string;
  hosts?: StaticHosts;
  /** The object-store endpoint the installer downloads from (host[:port]). */
  s3?: ObjectStoreTarget;
  /**
   * Without `s3`: the installer downloads the package from the control plane
   * (`GET /ferry/agent/package`), so F1 checks that it is published there,
   * signed with `credentials`, after F2 proved the way and the key.
   */
  packageFromControlPlane?: boolean;
  /** Set once registered. */
  sourceServerID?: string;
  /** The data-plane client certificate issued at registration. */
  clientCertificate?: { certPem: string; keyPem: string };
  /** The assignment kept at registration, used when the control plane cannot be asked. */
  storedAssignment?: ReplicatorAssignment;
  /** Per probe. @default 5000 */
  timeoutMs?: number;
  /** @default 4 MiB */
  probeBytes?: number;
}

export async function runSourceDoctor(o: SourceDoctorOptions): Promise<DoctorFinding[]> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const service = hostPort(o.endpoint, 443);
  const s3Name = o.s3 ? objectStoreName(o.s3).name : undefined;

  const names = newRun("F3", "service");
  const resolved = await checkNames(names, [service.host, ...(s3Name ? [s3Name] : [])], o.hosts);
  const runs: FlowRun[] = [names];

  if (o.s3) runs.push(await checkObjectStore("F1", o.s3, resolved, timeoutMs));
  // From the control plane, F1 rides on F2's way there: listed first, checked after F2.
  const f1 = !o.s3 && o.packageFromControlPlane ? newRun("F1", "service") : undefined;
  if (f1) runs.push(f1);

  const f2 = newRun("F2", "service");
  runs.push(f2);
  let assignment: AgentAssignmentResponse | undefined;
  let localAddress: string | undefined;
  const serviceAddress = resolved.get(service.host);
  if (!serviceAddress) Object.assign(f2, { skipped: `${service.host} does not resolve`, blockedBy: "F3" });
  else {
    const t = {
      name: service.host,
      port: service.port,
      address: serviceAddress,
      timeoutMs,
      ...(o.caPem ? { caPem: o.caPem } : {}),
      ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    };
    const ok = await checkTcpTls(f2, t);
    if (ok) {
      localAddress = ok.localAddress;
      if ((await checkClock(f2, t, ok.caPem)) && o.credentials) {
        const call = await checkSignedCall(
          f2,
          {
            ...t,
            region: o.region,
            credentials: o.credentials,
            ...(o.sourceServerID ? { sourceServerID: o.sourceServerID } : {}),
          },
          ok.caPem,
        );
        assignment = call?.assignment;
        if (call && f1)
          await checkControlPlanePackage(
            f1,
            { ...t, region: o.region, credentials: o.credentials },
            ok.caPem,
          );
      } else if (!o.credentials) passed(f2, "auth", "no credentials given: the signed call is not checked");
    }
  }
  if (f1 && f1.checks.length === 0) {
    if (!o.credentials)
      f1.skipped = "no credentials given: the download from the control plane is not checked";
    else
      Object.assign(f1, {
        skipped: "the package comes from the control plane (no --s3-endpoint)",
        blockedBy: "F2",
      });
  }

  const f7 = newRun("F7", "replicator");
  runs.push(f7);
  if (!o.sourceServerID) {
    f7.skipped = "this source is not registered yet (the installer registers it next)";
  } else {
    if (!assignment && hasFailed(f2) && o.storedAssignment) {
      // The control plane cannot be asked: try the replicator it assigned at registration.
      assignment = {
        sourceServerID: o.sourceServerID,
        desiredReplicationState: "RUNNING",
        dataPlaneRouting: "PRIVATE_IP",
        replicator: o.storedAssignment,
        serverTime: "",
      };
    }
    if (assignment) {
      await checkDataPlane(f7, {
        assignment,
        timeoutMs,
        ...(o.clientCertificate ? { clientCertificate: o.clientCertificate } : {}),
        ...(o.probeBytes !== undefined ? { probeBytes: o.probeBytes } : {}),
      });
    } else
      Object.assign(f7, {
        skipped: "the control plane could not be asked which replicator",
        blockedBy: hasFailed(f2) || f2.skipped ? "F2" : undefined,
      });
  }
  return summarize(runs, "source", localAddress);
}
