/**
 * The installed agent's service: `ferry agent run` reports to the control
 * plane every `reportIntervalSeconds` with the per-server credentials from
 * registration and follows what the operator wants, up to uninstalling
 * itself after FinalizeCutover / DisconnectFromService. The systemd unit that
 * runs it is in systemd-unit.ts.
 */
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../lib/errors.ts";
import { parseResolve } from "../lib/static-resolve.ts";
import type { Logger } from "../lib/log.ts";
import { createControlClient, type ReportAnswer } from "./control-client.ts";
import type { AgentConfig } from "./install.ts";
import { ReplicationDriver } from "./replication-driver.ts";
import { uninstallSelf } from "./uninstall.ts";

export {
  UNIT_NAME,
  installService,
  removeService,
  renderUnit,
  systemdRuns,
  unitDirFor,
  writeUnit,
  type InstalledService,
} from "./systemd-unit.ts";

export interface RunAgentOptions {
  config: AgentConfig;
  /** Where replication keeps its state (generations, change tracking). Without it, the agent only reports. */
  stateDir?: string;
  /** Change tracking tier. @default "auto" */
  tracker?: "auto" | "ebpf" | "scan";
  /** See DriverOptions.consistencyIntervalSeconds. @default 10 */
  consistencyIntervalSeconds?: number;
  /** The pause between passes of the scan tracker (seconds). @default 60 */
  scanIntervalSeconds?: number;
  /** This process is the systemd service (`INVOCATION_ID` is set): uninstalling disables it without stopping it. @default false */
  underSystemd?: boolean;
  signal: AbortSignal;
  log: Logger;
  /** Called after every report (tests, progress). */
  onReport?: (answer: ReportAnswer) => void;
}

/**
 * Reports until aborted or told to uninstall, and replicates the disks to the
 * replicator the control plane assigns (when the agent holds a data-plane
 * certificate). A failed report is logged and retried at the next interval
 * (the control plane shows the server as not seen when they keep failing);
 * a refused key stops replication until the key works again. After
 * FinalizeCutover or DisconnectFromService the answer says `uninstall`:
 * replication stops, the agent removes its service and state and
 * acknowledges (uninstall.ts), and returns "uninstalled".
 */
export async function runAgent(o: RunAgentOptions): Promise<"aborted" | "disconnected" | "uninstalled"> {
  const { config } = o;
  const client = createControlClient({
    endpoint: config.endpoint,
    region: config.region,
    credentials: config.agentCredentials,
    caPem: config.caFile ? await readFile(config.caFile, "utf8") : undefined,
    hosts: parseResolve(config.resolve),
  });
  let interval = config.reportIntervalSeconds;
  const driver =
    config.dataPlane && o.stateDir
      ? new ReplicationDriver({
          sourceServerID: config.sourceServerID,
          disks: config.disks,
          stateDir: o.stateDir,
          clientCertificate: {
            certPem: await readFile(config.dataPlane.certFile, "utf8"),
            keyPem: await readFile(config.dataPlane.keyFile, "utf8"),
          },
          ...(o.tracker ? { tracker: o.tracker } : {}),
          ...(o.consistencyIntervalSeconds
            ? { consistencyIntervalSeconds: o.consistencyIntervalSeconds }
            : {}),
          ...(o.scanIntervalSeconds !== undefined ? { scanIntervalSeconds: o.scanIntervalSeconds } : {}),
          log: o.log,
        })
      : undefined;
  let driverClosed = false;
  try {
    while (!o.signal.aborted) {
      try {
        const fields = driver?.reportFields() ?? {
          dataReplicationState: "INITIATING" as const,
          replicatedDisks: config.disks.map((d) => ({
            deviceName: d.deviceName,
            totalStorageBytes: d.bytes,
            replicatedStorageBytes: 0,
            rescannedStorageBytes: 0,
            backloggedStorageBytes: 0,
          })),
        };
        const answer = await client.report({
          sourceServerID: config.sourceServerID,
          ...fields,
        } as Parameters<typeof client.report>[0]);
        o.onReport?.(answer);
        interval = answer.reportIntervalSeconds;
        await driver?.apply(answer as Parameters<ReplicationDriver["apply"]>[0]);
        if (answer.uninstall) {
          o.log.info("the server was cut over or disconnected from the service: uninstalling the agent", {
            sourceServerID: config.sourceServerID,
          });
          // Replication stops (trackers saved) before the state they would save into goes.
          await driver?.close();
          driverClosed = true;
          await uninstallSelf({
            config,
            stateDir: o.stateDir,
            underSystemd: o.underSystemd ?? false,
            acknowledge: (removed) => client.uninstalled({ sourceServerID: config.sourceServerID, removed }),
            log: o.log,
          });
          return "uninstalled";
        }
        if (answer.desiredReplicationState === "DISCONNECTED") {
          // A control plane that does not ask for the uninstall: stop, keep the state.
          o.log.info("disconnected from service by the operator: stopping", {
            sourceServerID: config.sourceServerID,
          });
          return "disconnected";
        }
      } catch (err) {
        const refused = err instanceof FerryError && KEY_REFUSED.test(String(err.details.errorType ?? ""));
        if (refused) {
          // Without valid credentials the agent has no authority to replicate (its key was revoked,
          // e.g. it missed the uninstall of a disconnected server): it stops until the key works again.
          await driver?.apply({ desiredReplicationState: "STOPPED" });
          o.log.error(
            "the control plane refused this agent's key: replication stopped. Reinstall the agent, or remove it with ferry-installer-init --uninstall",
            { error: err.message },
          );
        } else {
          o.log.warn("report to the control plane failed; retrying", {
            error: err instanceof Error ? err.message : String(err),
          });
        }
      }
      await sleep(Math.max(1, interval) * 1000, undefined, { signal: o.signal }).catch(() => {});
    }
    return "aborted";
  } finally {
    if (!driverClosed) await driver?.close();
    client.close();
  }
}

/**
 * The refusal that means the key itself is gone (revoked, deleted), not a passing failure: not
 * InvalidSignatureException, which a skewed clock also causes and which replication can outlast.
 */
const KEY_REFUSED = /^UnrecognizedClientException$/;
