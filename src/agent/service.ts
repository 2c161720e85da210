/**
 * The installed agent's service: `ferry agent run` reports to the control
 * plane every `reportIntervalSeconds` with the per-server credentials from
 * registration and follows what the operator wants (stopping on
 * DISCONNECTED); the systemd unit that runs it.
 */
import { readFile, writeFile, mkdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";
import { parseResolve } from "../lib/static-resolve.ts";
import type { Logger } from "../lib/log.ts";
import { createControlClient, type ReportAnswer } from "./control-client.ts";
import type { AgentConfig } from "./install.ts";
import { ReplicationDriver } from "./replication-driver.ts";

export const UNIT_NAME = "ferry-agent.service";

const run = promisify(execFile);

/** systemd is the init system (the check `sd_booted()` makes). */
export function systemdRuns(root = "/"): boolean {
  return existsSync(join(root, "run/systemd/system"));
}

/** The unit file: the bundled CLI, restarted on failure, state under the install dir. */
export function renderUnit(installDir: string, stateDir: string): string {
  return [
    "[Unit]",
    "Description=Ferry replication agent",
    "Documentation=https://github.com/ferry/ferry/blob/main/docs/installer.md",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${installDir}/bin/ferry agent run --state-dir ${stateDir}`,
    `Environment=NODE_COMPILE_CACHE=${installDir}/cache`,
    "Restart=on-failure",
    "RestartSec=5",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Writes the unit into `unitDir`; returns its path. Enabling it is the caller's (systemctl). */
export async function writeUnit(unitDir: string, installDir: string, stateDir: string): Promise<string> {
  await mkdir(unitDir, { recursive: true });
  const path = join(unitDir, UNIT_NAME);
  await writeFile(path, renderUnit(installDir, stateDir), { mode: 0o644 });
  return path;
}

/** Writes the unit, then `systemctl daemon-reload` and `enable --now`; returns the unit's path. */
export async function installService(unitDir: string, installDir: string, stateDir: string): Promise<string> {
  const path = await writeUnit(unitDir, installDir, stateDir);
  for (const args of [["daemon-reload"], ["enable", "--now", UNIT_NAME]]) {
    try {
      await run("systemctl", args);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new FerryError(
        "SYSTEMD_FAILED",
        `systemctl ${args.join(" ")} failed (${stderr || String(err)}): the server is registered; see \`journalctl -u ${UNIT_NAME}\`, or start the agent with ${installDir}/bin/ferry agent run --state-dir ${stateDir}`,
        { cause: err },
      );
    }
  }
  return path;
}

export interface RunAgentOptions {
  config: AgentConfig;
  /** Where replication keeps its state (generations, change tracking). Without it, the agent only reports. */
  stateDir?: string;
  /** Change tracking tier. @default "auto" */
  tracker?: "auto" | "ebpf" | "scan";
  signal: AbortSignal;
  log: Logger;
  /** Called after every report (tests, progress). */
  onReport?: (answer: ReportAnswer) => void;
}

/**
 * Reports until aborted or disconnected by the operator, and replicates the
 * disks to the replicator the control plane assigns (when the agent holds a
 * data-plane certificate). A failed report is logged and retried at the next
 * interval (the control plane shows the server as not seen when they keep
 * failing).
 */
export async function runAgent(o: RunAgentOptions): Promise<"aborted" | "disconnected"> {
  const { config } = o;
  const client = createControlClient({
    endpoint: config.endpoint,
    region: config.region,
    credentials: config.agentCredentials,
    caPem: config.caFile ? await readFile(config.caFile, "utf8") : undefined,
    hosts: parseResolve(config.resolve),
  });
  let interval = config.reportIntervalSeconds;
  let uninstall = false;
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
          log: o.log,
        })
      : undefined;
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
          // FinalizeCutover: the source's job is done; its credentials and state go with the agent.
          o.log.info("the server was cut over: uninstalling the agent", {
            sourceServerID: config.sourceServerID,
          });
          uninstall = true;
          return "disconnected";
        }
        if (answer.desiredReplicationState === "DISCONNECTED") {
          o.log.info("disconnected from service by the operator: stopping", {
            sourceServerID: config.sourceServerID,
          });
          return "disconnected";
        }
      } catch (err) {
        o.log.warn("report to the control plane failed; retrying", {
          error: err instanceof Error ? err.message : String(err),
        });
      }
      await sleep(Math.max(1, interval) * 1000, undefined, { signal: o.signal }).catch(() => {});
    }
    return "aborted";
  } finally {
    await driver?.close();
    client.close();
    if (uninstall && o.stateDir) await rm(o.stateDir, { recursive: true, force: true });
  }
}
