/**
 * `createLauncher`: the launch pipeline behind the control plane's jobs.
 * Snapshot choice → conversion (each disk written from the snapshot to a new
 * file in the instance directory, post-launch actions run on those copies) →
 * the launch target. A launch reads its snapshot only through SnapshotReader;
 * whatever fails, the half-made instance is removed.
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import type { SnapshotCatalog } from "../model/staging.ts";
import type { Launcher, LaunchOutcome, LaunchRequest, LaunchedInstanceDetails } from "../model/launch.ts";
import { INSTANCE_ID_PATTERN } from "../model/launch.ts";
import type { Logger } from "../lib/log.ts";
import { silentLogger } from "../lib/log.ts";
import { FerryError } from "../lib/errors.ts";
import { formatBytes } from "../lib/units.ts";
import { chooseSnapshots } from "./snapshot-choice.ts";
import { materializeDisk } from "./materialize.ts";
import { actionsFor, runPostLaunchActions } from "./post-launch.ts";
import type { LaunchTarget, TargetDisk } from "./targets/target.ts";
import { defaultTargets } from "./targets/index.ts";

export interface LauncherOptions {
  /** Instances live in `<dataDir>/instances/<sourceServerID>/<instanceId>`. */
  dataDir: string;
  /** The staging store's snapshots; a function when the store is attached after the launcher is made. */
  catalog: SnapshotCatalog | (() => SnapshotCatalog | undefined);
  /** @default "image" */
  defaultTarget?: string;
  /** @default image and qemu */
  targets?: LaunchTarget[];
  /** Where post-launch action scripts are looked up. @default `<dataDir>/post-launch-actions` */
  postLaunchScriptsDir?: string;
  /** Releases a server's staging resources (FinalizeCutover). @default nothing to release */
  releaseStaging?: (sourceServerID: string) => Promise<void>;
  /** Lets a released server replicate again (its agent was reinstalled). @default nothing to do */
  reinstateStaging?: (sourceServerID: string) => Promise<void>;
  logger?: Logger;
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, "_");
}

export function createLauncher(o: LauncherOptions): Launcher & { instancesDir: string } {
  const instancesDir = resolve(o.dataDir, "instances");
  const scriptsDir = o.postLaunchScriptsDir ?? join(o.dataDir, "post-launch-actions");
  const targets = new Map((o.targets ?? defaultTargets()).map((t) => [t.name, t]));
  const logger = o.logger ?? silentLogger;
  const catalogOf = () => (typeof o.catalog === "function" ? o.catalog() : o.catalog);

  function instanceDir(sourceServerID: string, instanceId: string): string {
    if (!INSTANCE_ID_PATTERN.test(instanceId))
      throw new FerryError(
        "BAD_INSTANCE_ID",
        `'${instanceId}' is not an instance id (i- and 17 hex digits).`,
      );
    return join(instancesDir, safeName(sourceServerID), instanceId);
  }

  async function launch(req: LaunchRequest): Promise<LaunchOutcome> {
    const settings = req.launchConfiguration.ferry ?? {};
    const targetName = settings.target ?? o.defaultTarget ?? "image";
    const target = targets.get(targetName);
    if (!target)
      throw new FerryError(
        "UNKNOWN_LAUNCH_TARGET",
        `Launch target '${targetName}' is not one this control plane has (${[...targets.keys()].join(", ")}). Set ferry.target in the launch configuration to one of them.`,
      );
    const catalog = catalogOf();
    if (!catalog)
      throw new FerryError(
        "NO_STAGING_STORE",
        "The staging store is not attached yet; launch again in a moment.",
      );
    const snapshots = await chooseSnapshots(catalog, req, (settings.snapshotTimeoutSeconds ?? 30) * 1000);

    const dir = instanceDir(req.sourceServerID, req.instanceId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let launched = false;
    try {
      const started = performance.now();
      await req.log({
        event: "CONVERSION_START",
        details: `writing ${snapshots.length} disk(s) from the snapshot to ${dir}`,
      });
      const disks: TargetDisk[] = [];
      let dataBytes = 0;
      for (const snap of snapshots) {
        const path = join(dir, `${safeName(snap.diskId)}.raw`);
        const reader = await catalog.open(req.sourceServerID, snap.diskId, snap.snapshotId);
        try {
          dataBytes += (await materializeDisk(reader, path, req.signal)).dataBytes;
        } catch (err) {
          const m = err instanceof Error ? err.message : String(err);
          throw new FerryError(
            err instanceof FerryError ? err.code : "CONVERSION_FAILED",
            `Disk ${snap.diskId}, snapshot ${snap.snapshotId}: ${m}`,
          );
        } finally {
          await reader.close();
        }
        disks.push({ diskId: snap.diskId, snapshotId: snap.snapshotId, path, bytes: snap.diskSize });
      }
      const actions = actionsFor(req.launchConfiguration.postLaunchActions, req.initiatedBy);
      const ran = disks[0] ? await runPostLaunchActions(actions, disks[0].path, scriptsDir, dir) : [];
      const report = ran
        .map(
          (a) =>
            `post-launch action ${a.actionName} (${a.ssmDocumentName}): ${a.executionStatus}${a.failureReason ? `, ${a.failureReason}` : ""}${a.output ? `\n${a.output.trimEnd()}` : ""}`,
        )
        .join("\n");
      const blocking = ran.filter(
        (a) =>
          a.executionStatus === "FAILED" && req.initiatedBy === "START_CUTOVER" && a.mustSucceedForCutover,
      );
      if (blocking.length) {
        await req.log({ event: "CONVERSION_FAIL", rawError: report });
        throw new FerryError(
          "POST_LAUNCH_ACTION_FAILED",
          `Post-launch action ${blocking.map((a) => a.actionName).join(", ")} failed and must succeed for cutover: ${blocking[0]!.failureReason}.`,
        );
      }
      const seconds = (performance.now() - started) / 1000;
      await req.log({
        event: "CONVERSION_END",
        details:
          `${disks.map((d) => `${d.diskId} → ${d.path} (${formatBytes(d.bytes)})`).join("; ")}; ${formatBytes(dataBytes)} of data written in ${seconds.toFixed(1)} s` +
          (report ? `\n${report}` : ""),
      });
      const disposition = req.launchConfiguration.launchDisposition ?? "STARTED";
      await req.log({
        event: "LAUNCH_START",
        targetInstanceID: req.instanceId,
        details: `target ${target.name} (${disposition}) in ${dir}`,
      });
      const out = await target.launch({
        sourceServerID: req.sourceServerID,
        instanceId: req.instanceId,
        dir,
        disks,
        settings,
        disposition,
        log: req.log,
        logger,
        signal: req.signal,
      });
      launched = true;
      const details: LaunchedInstanceDetails = {
        target: target.name,
        location: dir,
        disks: out.disks.map((d) => ({
          ...d,
          snapshotId: disks.find((x) => x.diskId === d.diskId)?.snapshotId ?? "",
        })),
        ...(out.pid !== undefined ? { pid: out.pid } : {}),
        ...(out.consoleLog ? { consoleLog: out.consoleLog } : {}),
        ...(out.accelerator ? { accelerator: out.accelerator } : {}),
      };
      return {
        details,
        firstBoot: out.firstBoot,
        ...(out.firstBootResult ? { firstBootResult: out.firstBootResult } : {}),
        postLaunchActions: ran.map((a) => ({
          actionName: a.actionName,
          ssmDocumentName: a.ssmDocumentName,
          executionStatus: a.executionStatus,
          ...(a.failureReason ? { failureReason: a.failureReason } : {}),
        })),
      };
    } finally {
      if (!launched) {
        await target.terminate(req.instanceId, dir).catch(() => {});
        await rm(dir, { recursive: true, force: true });
      }
    }
  }

  return {
    instancesDir,
    launch,
    async terminate(sourceServerID, details) {
      const instanceId = details.location.split(sep).pop() ?? "";
      const dir = instanceDir(sourceServerID, instanceId);
      if (resolve(details.location) !== dir)
        throw new FerryError(
          "BAD_INSTANCE_LOCATION",
          `Instance location ${details.location} is not under ${instancesDir}; not removing it.`,
          { kind: "internal" },
        );
      await targets.get(details.target)?.terminate(instanceId, dir);
      await rm(dir, { recursive: true, force: true });
    },
    async releaseStagingResources(sourceServerID) {
      await o.releaseStaging?.(sourceServerID);
      logger.info("staging resources released", { sourceServerID });
    },
    async reinstateStagingResources(sourceServerID) {
      await o.reinstateStaging?.(sourceServerID);
    },
    async close() {
      for (const t of targets.values()) await t.close();
    },
  };
}
