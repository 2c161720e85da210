/**
 * What a launch is, as the control plane and the launch targets share it.
 * The control plane owns jobs and the lifecycle (src/control/jobs); a
 * `Launcher` (src/launch) turns a snapshot into a launched instance through a
 * launch target (`image`, `qemu`, …). Types and the Ferry launch settings
 * schema only: the host (the CLI) injects an implementation.
 */
import { z } from "zod";
import type { JobLogEvent, LaunchConfiguration } from "./mgn-shapes.gen.ts";

/**
 * Ferry's extension of MGN's launch configuration: member `ferry` of
 * UpdateLaunchConfiguration's body and of GetLaunchConfiguration's answer.
 * MGN clients ignore it; a signed raw JSON request sets it (see docs/launch.md).
 */
export const FerryLaunchSettings = z.object({
  /** The launch target's name (`image`, `qemu`, or one a deployment adds). @default the launcher's default, `image` */
  target: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/)
    .optional(),
  /** Image files: `raw`, or `qcow2` (needs qemu-img on the control plane host). @default "raw" */
  imageFormat: z.enum(["raw", "qcow2"]).optional(),
  /**
   * qemu: `kvm`, `tcg` (software emulation), or `auto`: KVM when /dev/kvm is usable for an ordinary
   * guest (the CPU has VMX or SVM), software emulation otherwise. @default "auto"
   */
  accelerator: z.enum(["auto", "kvm", "tcg"]).optional(),
  /** qemu: guest memory. @default 256 */
  memoryMiB: z.number().int().min(64).max(65_536).optional(),
  /** qemu: first boot is UNKNOWN when the marker has not shown on the console by then. @default 120 */
  bootTimeoutSeconds: z.number().int().min(1).max(3600).optional(),
  /** qemu: the console text that means the instance booted. @default "login:" */
  bootMarker: z.string().min(1).max(256).optional(),
  /** Seconds to wait for a fresh snapshot before using the newest existing one. @default 30 */
  snapshotTimeoutSeconds: z.number().int().min(1).max(3600).optional(),
});
export type FerryLaunchSettings = z.infer<typeof FerryLaunchSettings>;

/** The qemu target's accelerator setting. */
export type Accelerator = NonNullable<FerryLaunchSettings["accelerator"]>;

/** The accelerator a qemu launch used, and why (what `auto` chose). */
export interface AcceleratorChoice {
  name: "kvm" | "tcg";
  reason: string;
}

/** A stored launch configuration: MGN's shape plus Ferry's settings. */
export type FerryLaunchConfiguration = LaunchConfiguration & { ferry?: FerryLaunchSettings };

/** One job-log line a launch writes (MGN's events; `details` is Ferry's free text). */
export interface LaunchLogEntry {
  event: JobLogEvent;
  targetInstanceID?: string;
  rawError?: string;
  /** What happened in words: the snapshot used, where images were written, a script's output. */
  details?: string;
}

export interface LaunchRequest {
  jobID: string;
  sourceServerID: string;
  initiatedBy: "START_TEST" | "START_CUTOVER";
  /** The instance id the control plane chose (`i-` + 17 hex digits). */
  instanceId: string;
  /** True when data replication is live: a fresh snapshot is worth waiting for. */
  replicating: boolean;
  launchConfiguration: FerryLaunchConfiguration;
  log(entry: LaunchLogEntry): Promise<void>;
  signal: AbortSignal;
}

export interface LaunchedDisk {
  diskId: string;
  snapshotId: string;
  path: string;
  format: "raw" | "qcow2";
  bytes: number;
}

/** What a post-launch action did (MGN's postLaunchActionsStatus, from Ferry's scripts). */
export interface PostLaunchActionResult {
  actionName: string;
  ssmDocumentName: string;
  executionStatus: "SUCCESS" | "FAILED";
  failureReason?: string;
}

/** Where a launch put the instance; kept on the source server as `launchedInstance.ferry`. */
export interface LaunchedInstanceDetails {
  target: string;
  /** The directory that holds the instance's disks (and console log for qemu). */
  location: string;
  disks: LaunchedDisk[];
  /** qemu: the process id while the instance runs. */
  pid?: number;
  consoleLog?: string;
  /** qemu: `kvm` or `tcg`, and why (auto's choice). */
  accelerator?: AcceleratorChoice;
}

export interface LaunchOutcome {
  details: LaunchedInstanceDetails;
  /** WAITING while a booted instance has not shown its marker; STOPPED when not booted. */
  firstBoot: "WAITING" | "SUCCEEDED" | "UNKNOWN" | "STOPPED";
  /** Resolves when first boot is known (a booting target only). */
  firstBootResult?: Promise<"SUCCEEDED" | "UNKNOWN">;
  postLaunchActions: PostLaunchActionResult[];
}

/**
 * Launches and removes instances. `launch` throws a FerryError when the
 * launch failed (the job logs LAUNCH_FAILED with its message); it never
 * modifies the snapshot it reads.
 */
export interface Launcher {
  launch(req: LaunchRequest): Promise<LaunchOutcome>;
  /** Stops and removes a launched instance and its files; no error when already gone. */
  terminate(sourceServerID: string, details: LaunchedInstanceDetails): Promise<void>;
  /** FinalizeCutover / DisconnectFromService: release the server's staging resources. */
  releaseStagingResources(sourceServerID: string): Promise<void>;
  /** A released server registered again (agent reinstalled): it may replicate again at once. */
  reinstateStagingResources?(sourceServerID: string): Promise<void>;
  close(): Promise<void>;
}

/** `i-` + 17 hex digits: EC2's format, which MGN clients validate. */
export const INSTANCE_ID_PATTERN = /^i-[0-9a-f]{17}$/;
