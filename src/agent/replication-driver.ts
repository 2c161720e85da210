/**
 * The installed agent's replication: what `ferry agent run` does between
 * reports. It follows the control plane's answers (desired state, assigned
 * replicator, bandwidth) and runs one continuous replication per disk, with a
 * change tracker each, to the assigned replicator using the source server's
 * data-plane certificate; and it turns what happens into the report's
 * MGN-shaped fields (data replication state, per-disk bytes, initiation steps,
 * errors).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { dataPlaneFailure, findingFor } from "../model/flow-classify.ts";
import { mgnFailureForFlow, formatFinding, type ObservedFlowFailure } from "../model/flows.ts";
import type { ContinuousStatus } from "./continuous.ts";
import { type SyncProgress, replicateDisk } from "./sync.ts";
import { Throttle } from "./throttle.ts";
import { type ChangeTracker, selectTracker } from "./tracker/index.ts";

export interface DriverDisk {
  /** Device or image path; also the MGN deviceName. */
  deviceName: string;
  bytes: number;
}

export interface DriverAssignment {
  replicatorId: string;
  address: string;
  certFingerprint: string;
}

export interface DriverAnswer {
  desiredReplicationState: "RUNNING" | "PAUSED" | "STOPPED" | "DISCONNECTED";
  replicator?: DriverAssignment | undefined;
  replicationConfiguration?:
    { bandwidthThrottling?: number | undefined; dataPlaneRouting?: string | undefined } | undefined;
}

export interface DriverOptions {
  sourceServerID: string;
  disks: DriverDisk[];
  /** Agent state (generations, trackers). */
  stateDir: string;
  clientCertificate: { certPem: string; keyPem: string };
  /** @default "auto" */
  tracker?: "auto" | "ebpf" | "scan";
  /**
   * A consistency point (a barrier, no data) at least this often, idle or not. It must come well
   * within the point-in-time policy's 30 s slack (DRS's finest default rule: every 10 minutes) and a
   * launch's 30 s snapshot wait. With the scan tracker an idle disk's point is consistent only after
   * two of its passes (every minute by default). @default 10
   */
  consistencyIntervalSeconds?: number;
  /** The pause between passes of the scan tracker. @default 60 */
  scanIntervalSeconds?: number;
  log: Logger;
}

type DiskPhase = "INITIATING" | "INITIAL_SYNC" | "RESCAN" | "BACKLOG" | "CONTINUOUS" | "STALLED";

interface DiskRun {
  disk: DriverDisk;
  diskId: string;
  phase: DiskPhase;
  replicated: number;
  rescanned: number;
  backlog: number;
  error?: { error: string; rawError: string };
  connected: boolean;
  tracker?: ChangeTracker;
}

/** The MGN error and initiation step a failure belongs to. */
function classify(err: unknown): { error: string; step: string } {
  const code = err instanceof FerryError ? err.code : "";
  if (/FINGERPRINT|AUTH_FAILED|REPLICATOR_CLOSED/.test(code)) {
    return {
      error: "FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT",
      step: "PAIR_REPLICATION_SERVER_WITH_AGENT",
    };
  }
  if (/^REPLICATOR_|CONNECTION_LOST|PEER_SILENT/.test(code)) {
    return {
      error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
      step: "CONNECT_AGENT_TO_REPLICATION_SERVER",
    };
  }
  return { error: "FAILED_TO_START_DATA_TRANSFER", step: "START_DATA_TRANSFER" };
}

export class ReplicationDriver {
  private readonly o: DriverOptions;
  private readonly runs: DiskRun[];
  private readonly throttle = new Throttle(0);
  private controller: AbortController | undefined;
  private running: Promise<void> | undefined;
  private target: string | undefined;
  private lastFailure: { error: string; step: string; rawError: string } | undefined;
  /** The network flow behind the last connection failure, while no disk is connected. */
  private failedFlow: ObservedFlowFailure | undefined;
  private routing: "PRIVATE_IP" | "PUBLIC_IP" | undefined;

  constructor(o: DriverOptions) {
    this.o = o;
    const used = new Set<string>();
    this.runs = o.disks.map((disk) => {
      let diskId = diskIdFor(disk.deviceName);
      while (used.has(diskId)) diskId += "_";
      used.add(diskId);
      return { disk, diskId, phase: "INITIATING", replicated: 0, rescanned: 0, backlog: 0, connected: false };
    });
  }

  /** Follows an answer from register or report. */
  async apply(answer: DriverAnswer): Promise<void> {
    const mbps = answer.replicationConfiguration?.bandwidthThrottling ?? 0;
    if (mbps !== this.throttle.mbps) this.throttle.setMbps(mbps);
    const routing = answer.replicationConfiguration?.dataPlaneRouting;
    this.routing = routing === "PUBLIC_IP" || routing === "PRIVATE_IP" ? routing : undefined;
    const want =
      answer.desiredReplicationState === "RUNNING" && answer.replicator
        ? `${answer.replicator.replicatorId}@${answer.replicator.address}#${answer.replicator.certFingerprint}`
        : undefined;
    if (want === this.target && (this.running || !want)) return;
    await this.halt();
    this.target = want;
    if (want && answer.replicator) this.start(answer.replicator);
  }

  private start(assignment: DriverAssignment): void {
    const [host, port] = splitHostPort(assignment.address);
    const controller = new AbortController();
    this.controller = controller;
    this.running = (async () => {
      await Promise.all(
        this.runs.map(async (run) => {
          // A disk keeps trying until the assignment changes or the agent stops.
          while (!controller.signal.aborted) {
            try {
              await this.replicate(run, host, port, assignment, controller.signal);
            } catch (err) {
              if (controller.signal.aborted) break;
              const c = this.observeFailure(run, err, host, port) ?? classify(err);
              this.lastFailure = { ...c, rawError: run.error?.rawError ?? (err as Error).message };
              run.phase = "STALLED";
              run.connected = false;
              run.error ??= { error: c.error, rawError: (err as Error).message };
              this.o.log.warn("replication failed; retrying", {
                disk: run.diskId,
                error: (err as Error).message,
              });
              // Ends early when the assignment changes (halt aborts): halt waits for this loop, and an
              // unreferenced timer here left the process with nothing to wait on, so it exited mid-await.
              await sleep(5000, undefined, { signal: controller.signal }).catch(() => {});
            }
          }
        }),
      );
    })();
  }

  /**
   * A connection failure the sync retries by itself (it only logs it) or one
   * that ended a run: when it is the network's, it becomes the failed flow
   * of the report, with MGN's step and error for it.
   */
  private observeFailure(
    run: DiskRun,
    err: unknown,
    host: string,
    port: number,
  ): { error: string; step: string } | undefined {
    const code = err instanceof FerryError ? err.code : "";
    const failure = dataPlaneFailure(code, host, port, this.routing);
    if (!failure) return undefined;
    const finding = findingFor({ flow: "F7", role: "replicator", side: "source" }, failure);
    const mgn = mgnFailureForFlow("F7", finding.code);
    this.failedFlow = { ...finding, ok: false, at: new Date().toISOString() };
    this.lastFailure = { error: mgn.error, step: mgn.step, rawError: formatFinding(finding) };
    run.connected = false;
    // Before the first connection MGN shows the failed initiation step; after it, a stall.
    if (run.phase !== "INITIATING") run.phase = "STALLED";
    run.error = { error: mgn.error, rawError: formatFinding(finding) };
    return mgn;
  }

  /** The driver's logger for one disk's sync: reconnect warnings carry the failure's code. */
  private tap(run: DiskRun, host: string, port: number): Logger {
    const log = this.o.log;
    const observe = (fields?: Record<string, unknown>) => {
      if (typeof fields?.code === "string") {
        this.observeFailure(run, new FerryError(fields.code, String(fields.error ?? "")), host, port);
      }
    };
    return {
      ...log,
      warn: (msg, fields) => {
        observe(fields);
        log.warn(msg, fields);
      },
      child: (fields) => log.child(fields),
    };
  }

  private async replicate(
    run: DiskRun,
    host: string,
    port: number,
    assignment: DriverAssignment,
    signal: AbortSignal,
  ): Promise<void> {
    if (!run.tracker) {
      const { tracker, reason } = await selectTracker({
        devicePath: run.disk.deviceName,
        stateDir: `${this.o.stateDir}/${this.o.sourceServerID}/${run.diskId}.tracker`,
        prefer: this.o.tracker ?? "auto",
        ...(this.o.scanIntervalSeconds !== undefined
          ? { scanIntervalMs: this.o.scanIntervalSeconds * 1000 }
          : {}),
        logger: this.o.log,
      });
      await tracker.start();
      run.tracker = tracker;
      this.o.log.info("change tracking", { disk: run.diskId, kind: tracker.kind, reason });
    }
    const onProgress = (p: SyncProgress) => {
      run.connected = true;
      delete run.error;
      this.failedFlow = undefined;
      run.phase = p.mode === "rescan" ? "RESCAN" : "INITIAL_SYNC";
      run.replicated = p.mode === "rescan" ? run.replicated : p.ackedOffset;
      run.rescanned = p.rescannedBytes;
      run.backlog = p.backlogBytes;
    };
    const onStatus = (st: ContinuousStatus) => {
      run.connected = true;
      this.failedFlow = undefined;
      run.phase = st.dataReplicationState;
      run.replicated = run.disk.bytes;
      run.rescanned = st.rescannedBytes;
      run.backlog = st.backloggedBytes;
      if (st.error) run.error = st.error;
      else delete run.error;
    };
    try {
      await replicateDisk({
        sourcePath: run.disk.deviceName,
        sourceServerId: this.o.sourceServerID,
        diskId: run.diskId,
        endpoint: {
          host,
          port,
          fingerprint: assignment.certFingerprint,
          token: "",
          clientCertificate: this.o.clientCertificate,
        },
        stateDir: this.o.stateDir,
        throttle: this.throttle,
        signal,
        maxReconnects: Number.POSITIVE_INFINITY,
        log: this.tap(run, host, port),
        onProgress,
        continuous: {
          tracker: run.tracker,
          consistencyIntervalMs: (this.o.consistencyIntervalSeconds ?? 10) * 1000,
          onStatus,
        },
      });
    } catch (err) {
      if (err instanceof FerryError && err.code === "ABORTED" && signal.aborted) return;
      throw err;
    }
  }

  /** Stops replication (the trackers keep recording changes for the next start). */
  private async halt(): Promise<void> {
    this.controller?.abort();
    await this.running?.catch(() => {});
    this.controller = undefined;
    this.running = undefined;
    for (const r of this.runs) r.connected = false;
  }

  /** The replication fields of the next report. */
  reportFields(): {
    dataReplicationState: DiskPhase;
    replicatedDisks: {
      deviceName: string;
      totalStorageBytes: number;
      replicatedStorageBytes: number;
      rescannedStorageBytes: number;
      backloggedStorageBytes: number;
    }[];
    initiationSteps?: { name: string; status: string }[];
    dataReplicationError?: { error: string; rawError: string };
    replicatorId?: string;
    failedFlow?: ObservedFlowFailure;
  } {
    const order: DiskPhase[] = ["STALLED", "INITIATING", "RESCAN", "INITIAL_SYNC", "BACKLOG", "CONTINUOUS"];
    const state = this.runs.reduce<DiskPhase>(
      (worst, r) => (order.indexOf(r.phase) < order.indexOf(worst) ? r.phase : worst),
      "CONTINUOUS",
    );
    const error = this.runs.find((r) => r.error)?.error;
    const connected = this.runs.every((r) => r.connected);
    const fields: ReturnType<ReplicationDriver["reportFields"]> = {
      dataReplicationState: this.runs.length ? state : "INITIATING",
      replicatedDisks: this.runs.map((r) => ({
        deviceName: r.disk.deviceName,
        totalStorageBytes: r.disk.bytes,
        replicatedStorageBytes: Math.min(r.replicated, r.disk.bytes),
        rescannedStorageBytes: r.rescanned,
        backloggedStorageBytes: r.backlog,
      })),
    };
    if (this.target) fields.replicatorId = this.target.split("@")[0]!;
    if (error) fields.dataReplicationError = error;
    if (connected) {
      fields.initiationSteps = [
        { name: "PAIR_REPLICATION_SERVER_WITH_AGENT", status: "SUCCEEDED" },
        { name: "CONNECT_AGENT_TO_REPLICATION_SERVER", status: "SUCCEEDED" },
        { name: "START_DATA_TRANSFER", status: "SUCCEEDED" },
      ];
    } else if (this.lastFailure) {
      fields.initiationSteps = [{ name: this.lastFailure.step, status: "FAILED" }];
    }
    if (!connected && this.failedFlow) fields.failedFlow = this.failedFlow;
    return fields;
  }

  /** Stops replication and the trackers (persisting what they hold). */
  async close(): Promise<void> {
    await this.halt();
    for (const r of this.runs) await r.tracker?.stop();
  }
}

/** A replicator-safe id for a disk: `sda` for /dev/sda, `mapper_vg-root`, or an image's file name. */
export function diskIdFor(deviceName: string): string {
  const base = deviceName.startsWith("/dev/") ? deviceName.slice(5) : (deviceName.split("/").pop() ?? "");
  const id = base
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^[^A-Za-z0-9]+/, "")
    .replace(/\.\.+/g, ".");
  return (id || "disk").slice(0, 100);
}

function splitHostPort(address: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m)
    throw new FerryError(
      "BAD_ASSIGNMENT",
      `the control plane assigned a replicator at "${address}", not HOST:PORT`,
    );
  return [(m[1] ?? m[2])!, Number(m[3])];
}
