/**
 * A launch target: what becomes of the launched disks. The launcher has
 * already written every disk of the chosen snapshot to a file in the
 * instance directory (and run the post-launch actions on them); a target
 * turns those files into an instance — keeps them as images, boots them, or
 * copies them to a cloud's block storage. Adding a target is one new file
 * here plus its name in `targets/index.ts` (see docs/launch.md).
 */
import type { AcceleratorChoice, FerryLaunchSettings, LaunchLogEntry } from "../../model/launch.ts";
import type { Logger } from "../../lib/log.ts";

export interface TargetDisk {
  diskId: string;
  snapshotId: string;
  /** The launched disk, raw, in the instance directory. */
  path: string;
  bytes: number;
}

export interface TargetLaunchContext {
  sourceServerID: string;
  instanceId: string;
  /** The instance's own directory (created, empty but for the disks). */
  dir: string;
  /** The boot disk first. */
  disks: TargetDisk[];
  settings: FerryLaunchSettings;
  /** MGN's launchDisposition: boot the instance (STARTED) or only create it (STOPPED). */
  disposition: "STARTED" | "STOPPED";
  log(entry: LaunchLogEntry): Promise<void>;
  logger: Logger;
  signal: AbortSignal;
}

export interface TargetLaunch {
  /** The instance's disks as the target left them (paths, formats). */
  disks: { diskId: string; path: string; format: "raw" | "qcow2"; bytes: number }[];
  firstBoot: "WAITING" | "SUCCEEDED" | "UNKNOWN" | "STOPPED";
  firstBootResult?: Promise<"SUCCEEDED" | "UNKNOWN">;
  pid?: number;
  consoleLog?: string;
  accelerator?: AcceleratorChoice;
}

export interface LaunchTarget {
  readonly name: string;
  launch(ctx: TargetLaunchContext): Promise<TargetLaunch>;
  /** Stops what `launch` started in `dir` (the launcher removes the files). */
  terminate(instanceId: string, dir: string): Promise<void>;
  close(): Promise<void>;
}
