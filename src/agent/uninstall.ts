/**
 * The agent uninstalling itself after FinalizeCutover or DisconnectFromService
 * (the report answer's `uninstall`). The caller has stopped replication; this
 * removes the service unit and the state directory (credentials, data-plane
 * key, change-tracking state), then acknowledges with the credentials it
 * still holds in memory — the control plane revokes them on receipt, so the
 * acknowledgement is the agent's last call. The package's files (`bin/`, the
 * runtime) stay: they hold no secret, and the agent may be running from a
 * checkout; `ferry-installer-init --uninstall` removes them.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../lib/log.ts";
import type { AgentConfig } from "./install.ts";
import { removeService, UNIT_NAME, unitDirFor } from "./systemd-unit.ts";

export interface SelfUninstallOptions {
  config: AgentConfig;
  stateDir?: string | undefined;
  /** This process is the systemd service (`INVOCATION_ID` set): disable, do not stop — it exits by itself. */
  underSystemd: boolean;
  /** The acknowledgement call (the control client's `uninstalled`). */
  acknowledge: (removed: string[]) => Promise<unknown>;
  log: Logger;
  /** @default 3 */
  attempts?: number;
  /** @default 2000 */
  retryDelayMs?: number;
}

/** Removes the unit and the state; acknowledges. Returns what was removed, one line each. */
export async function uninstallSelf(o: SelfUninstallOptions): Promise<string[]> {
  const done: string[] = [];
  if (o.stateDir) {
    // An agent installed before the unit was recorded: the standard place, if its unit runs this state dir.
    const service = o.config.service ?? { unitFile: join(unitDirFor("/"), UNIT_NAME), root: "/" };
    try {
      done.push(...(await removeService({ ...service, stateDir: o.stateDir, stop: !o.underSystemd })));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      o.log.warn("could not remove the agent's service; removing its state anyway", { error: message });
      done.push(`could not remove ${service.unitFile}: ${message}`);
    }
    await rm(o.stateDir, { recursive: true, force: true });
    done.push(`removed the state directory ${o.stateDir}`);
  }
  for (const step of done) o.log.info("uninstall", { step });
  const attempts = o.attempts ?? 3;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      await o.acknowledge(done);
      o.log.info("the control plane has revoked this agent's credentials", {
        sourceServerID: o.config.sourceServerID,
      });
      break;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (attempt === attempts) {
        o.log.warn(
          "could not tell the control plane the agent is uninstalled; it revokes the credentials at the end of its grace period",
          { error: message },
        );
      } else await sleep(o.retryDelayMs ?? 2000);
    }
  }
  return done;
}
