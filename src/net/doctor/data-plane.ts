/**
 * F7 from the source: the replicator the control plane assigns, TCP 1500 to
 * the address `dataPlaneRouting` selects (a connection proves the return
 * path too: the SYN-ACK came back), the pairing (the replicator's
 * certificate fingerprint, and it accepting the source's client
 * certificate), and the throughput of a short probe.
 */
import type { AgentAssignmentResponse } from "../../model/agent-api.ts";
import { failed, passed, type FlowRun } from "./checks.ts";
import { probeDataPlane, tcpConnect } from "./probes.ts";

export interface DataPlaneCheckOptions {
  assignment: AgentAssignmentResponse;
  clientCertificate?: { certPem: string; keyPem: string };
  /** @default 4 MiB */
  probeBytes?: number;
  /** Below this the probe fails. @default 1 MiB/s */
  minimumBytesPerSecond?: number;
  timeoutMs: number;
}

function splitHostPort(address: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  return m ? [(m[1] ?? m[2])!, Number(m[3])] : [address, 1500];
}

export async function checkDataPlane(run: FlowRun, o: DataPlaneCheckOptions): Promise<void> {
  const a = o.assignment;
  if (a.desiredReplicationState !== "RUNNING") {
    failed(run, "assignment", {
      check: "assignment",
      reason: "not-running",
      state: a.desiredReplicationState,
    });
    return;
  }
  if (!a.replicator) {
    failed(run, "assignment", { check: "assignment", reason: "none" });
    return;
  }
  passed(
    run,
    "assignment",
    `replicator ${a.replicator.replicatorId} at ${a.replicator.address} (${a.dataPlaneRouting})`,
  );
  const [host, port] = splitHostPort(a.replicator.address);
  const tcp = await tcpConnect(host, port, o.timeoutMs);
  if (!tcp.ok) {
    let privateReachable: boolean | undefined;
    if (a.dataPlaneRouting === "PUBLIC_IP" && a.privateAddress && a.privateAddress !== a.replicator.address) {
      const [ph, pp] = splitHostPort(a.privateAddress);
      privateReachable = (await tcpConnect(ph, pp, o.timeoutMs)).ok;
    }
    failed(run, "tcp", {
      check: "connect",
      address: host,
      port,
      error: tcp.error,
      routing: a.dataPlaneRouting,
      ...(a.privateAddress ? { privateAddress: a.privateAddress } : {}),
      ...(privateReachable !== undefined ? { privateReachable } : {}),
    });
    return;
  }
  passed(run, "tcp", `TCP ${port} to ${host} connects (${tcp.ms} ms)`);
  passed(run, "return-path", `replies from ${host} reach ${tcp.localAddress}`);
  if (!o.clientCertificate) return;
  const bytes = o.probeBytes ?? 4 * 1024 * 1024;
  const probe = await probeDataPlane({
    address: host,
    port,
    fingerprint: a.replicator.certFingerprint,
    clientCertificate: o.clientCertificate,
    bytes,
    timeoutMs: Math.max(o.timeoutMs, 10_000),
  });
  if (!probe.ok) {
    if (probe.stage === "transfer" && probe.error === "NO_PROBE_SUPPORT") {
      passed(run, "pairing", "paired (this replicator has no probe: throughput not measured)");
      return;
    }
    failed(run, probe.stage === "transfer" ? "throughput" : "pairing", {
      check: "pairing",
      address: a.replicator.address,
      error: probe.stage === "fingerprint" ? "REPLICATOR_FINGERPRINT_MISMATCH" : probe.error,
      expected: a.replicator.certFingerprint,
      ...(probe.got !== undefined ? { got: probe.got } : {}),
    });
    return;
  }
  passed(run, "pairing", "the replicator's certificate matches and it accepts this source's certificate");
  const minimum = o.minimumBytesPerSecond ?? 1024 * 1024;
  if (probe.bytesPerSecond < minimum) {
    failed(run, "throughput", {
      check: "throughput",
      bytesPerSecond: probe.bytesPerSecond,
      minimumBytesPerSecond: minimum,
    });
    return;
  }
  passed(
    run,
    "throughput",
    `${(probe.bytesPerSecond / 1048576).toFixed(1)} MiB/s (${probe.bytes} bytes in ${probe.ms} ms)`,
  );
}
