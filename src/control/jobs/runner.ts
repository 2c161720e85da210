/**
 * Runs launch and terminate jobs in the control plane process, in the
 * background of the API call that created them. The job record and its log
 * are the only progress channel (DescribeJobs / DescribeJobLogItems). A job
 * interrupted by a restart is marked failed on the next start (`recover`),
 * never left STARTED.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Store } from "../store/store.ts";
import type { Job } from "../../model/mgn-shapes.gen.ts";
import type { Launcher, LaunchLogEntry } from "../../model/launch.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import type { Logger } from "../../lib/log.ts";
import * as L from "../../model/lifecycle.ts";
import { newJobId, resourceArn } from "../../model/ids.ts";
import { isoDateTime } from "../../model/duration.ts";
import { appendJobLog, withServer } from "./job-log.ts";

export type LaunchKind = "START_TEST" | "START_CUTOVER";

export interface JobRunnerOptions {
  /**
   * Names this control plane's runner (stable across restarts, one per data
   * directory): on a shared database, a restart recovers only its own jobs.
   */
  runnerId: string;
  store: Store;
  launcher: Launcher;
  now(): number;
  region: string;
  accountId: string;
  logger: Logger;
}

export interface JobRunner {
  readonly launcher: Launcher;
  /** True while a job of this process is working on the server. */
  isBusy(sourceServerID: string): boolean;
  /**
   * Runs `prepare(jobID)` (the lifecycle change), stores the new job
   * (PENDING) and runs it in the background; returns the stored job.
   */
  submitWith(
    initiatedBy: LaunchKind | "TERMINATE",
    sourceServerIDs: string[],
    tags: Record<string, string> | undefined,
    prepare?: (jobID: string) => Promise<void>,
  ): Promise<Job>;
  /** Releases a server's staging resources in the background (FinalizeCutover, DisconnectFromService). */
  releaseStaging(sourceServerID: string): void;
  /** A released server registered again: lets it replicate at once. Never throws (logs). */
  reinstateStaging(sourceServerID: string): Promise<void>;
  /** Marks jobs a previous process left unfinished as failed. Returns how many. */
  recover(): Promise<number>;
  /** Cancels running jobs and waits for them (the host closes the launcher). */
  close(): Promise<void>;
}

/** The runner id kept in `<dataDir>/job-runner-id` (created on first use). */
export function loadRunnerId(dataDir: string): string {
  const file = join(dataDir, "job-runner-id");
  try {
    const id = readFileSync(file, "utf8").trim();
    if (/^[0-9a-f]{32}$/.test(id)) return id;
  } catch {
    // first start: made below
  }
  const id = randomBytes(16).toString("hex");
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

export function newInstanceId(): string {
  return `i-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

export function createJobRunner(o: JobRunnerOptions): JobRunner {
  const { store, launcher } = o;
  const busy = new Set<string>();
  const running = new Set<Promise<void>>();
  const stop = new AbortController();

  const log = (jobID: string, id: string | undefined, e: LaunchLogEntry) =>
    appendJobLog(store, jobID, o.now(), id, e);
  const updateJob = async (jobID: string, change: (j: Job) => Job) => {
    await store.jobs.update(jobID, change);
  };
  const updateServer = async (id: string, change: (r: SourceServerRecord) => SourceServerRecord) => {
    await store.sourceServers.update(id, change);
  };

  async function launchOne(job: Job, kind: LaunchKind, id: string): Promise<void> {
    const jobID = job.jobID;
    const server = await store.sourceServers.get(id);
    if (!server) {
      await log(jobID, id, { event: "SERVER_SKIPPED", rawError: `source server ${id} was deleted` });
      await updateJob(jobID, (j) => withServer(j, id, (p) => ({ ...p, launchStatus: "FAILED" })));
      return;
    }
    const previous = server.launchedInstance;
    if (previous?.ferry) {
      // One launched instance per server, as MGN: a new launch replaces the previous one.
      await log(jobID, id, { event: "CLEANUP_START", targetInstanceID: previous.ec2InstanceID });
      try {
        await launcher.terminate(id, previous.ferry);
        await updateServer(id, (r) => {
          const n = structuredClone(r);
          delete n.launchedInstance;
          return n;
        });
        await log(jobID, id, { event: "CLEANUP_END", targetInstanceID: previous.ec2InstanceID });
      } catch (err) {
        await log(jobID, id, { event: "CLEANUP_FAIL", rawError: (err as Error).message });
      }
    }
    await updateJob(jobID, (j) => withServer(j, id, (p) => ({ ...p, launchStatus: "IN_PROGRESS" })));
    const instanceId = newInstanceId();
    try {
      const outcome = await launcher.launch({
        jobID,
        sourceServerID: id,
        initiatedBy: kind,
        instanceId,
        replicating: server.replication.control === "RUNNING" && server.agent.state === "CONTINUOUS",
        launchConfiguration: server.launchConfiguration,
        log: (e) => log(jobID, id, e),
        signal: stop.signal,
      });
      try {
        const recorded = await store.sourceServers.update(id, (r) => ({
          ...r,
          launchedInstance: {
            ec2InstanceID: instanceId,
            jobID,
            firstBoot: outcome.firstBoot,
            ferry: outcome.details,
          },
        }));
        if (!recorded) throw new Error(`source server ${id} was deleted during the launch`);
      } catch (err) {
        // An instance nobody can see or terminate through the API must not stay behind.
        await launcher.terminate(id, outcome.details).catch(() => {});
        throw err;
      }
      await updateJob(jobID, (j) =>
        withServer(j, id, (p) => ({
          ...p,
          launchStatus: "LAUNCHED",
          launchedEc2InstanceID: instanceId,
          ...(outcome.postLaunchActions.length
            ? {
                postLaunchActionsStatus: {
                  postLaunchActionsLaunchStatusList: outcome.postLaunchActions.map((a) => ({
                    ssmDocument: { actionName: a.actionName, ssmDocumentName: a.ssmDocumentName },
                    ssmDocumentType: "COMMAND" as const,
                    executionStatus: a.executionStatus,
                    ...(a.failureReason ? { failureReason: a.failureReason.slice(0, 256) } : {}),
                  })),
                },
              }
            : {}),
        })),
      );
      outcome.firstBootResult?.then(
        (firstBoot) =>
          updateServer(id, (r) =>
            r.launchedInstance?.ec2InstanceID === instanceId
              ? { ...r, launchedInstance: { ...r.launchedInstance, firstBoot } }
              : r,
          ).catch((err: unknown) => o.logger.warn("could not record first boot", { error: String(err) })),
        () => {},
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      o.logger.warn("launch failed", { jobID, sourceServerID: id, error: message });
      await log(jobID, id, { event: "LAUNCH_FAILED", rawError: message });
      await updateJob(jobID, (j) => withServer(j, id, (p) => ({ ...p, launchStatus: "FAILED" })));
      await updateServer(id, (r) => L.launchFailed(r, kind));
    }
  }

  async function terminateOne(job: Job, id: string): Promise<void> {
    const server = await store.sourceServers.get(id);
    const inst = server?.launchedInstance;
    await log(job.jobID, id, { event: "CLEANUP_START", targetInstanceID: inst?.ec2InstanceID });
    try {
      if (inst?.ferry) await launcher.terminate(id, inst.ferry);
      await updateServer(id, (r) => {
        const n = structuredClone(r);
        if (n.launchedInstance?.ec2InstanceID === inst?.ec2InstanceID) delete n.launchedInstance;
        return n;
      });
      await log(job.jobID, id, { event: "CLEANUP_END", targetInstanceID: inst?.ec2InstanceID });
      await updateJob(job.jobID, (j) =>
        withServer(j, id, (p) => ({
          ...p,
          launchStatus: "TERMINATED",
          ...(inst?.ec2InstanceID ? { launchedEc2InstanceID: inst.ec2InstanceID } : {}),
        })),
      );
    } catch (err) {
      await log(job.jobID, id, { event: "CLEANUP_FAIL", rawError: (err as Error).message });
      await updateJob(job.jobID, (j) => withServer(j, id, (p) => ({ ...p, launchStatus: "FAILED" })));
    }
  }

  async function run(job: Job, ids: string[]): Promise<void> {
    try {
      await updateJob(job.jobID, (j) => ({ ...j, status: "STARTED" }));
      await log(job.jobID, undefined, { event: "JOB_START" });
      for (const id of ids) {
        if (stop.signal.aborted) break;
        if (job.type === "TERMINATE") await terminateOne(job, id);
        else await launchOne(job, job.initiatedBy as LaunchKind, id);
      }
      if (stop.signal.aborted) await log(job.jobID, undefined, { event: "JOB_CANCEL" });
      await log(job.jobID, undefined, { event: "JOB_END" });
      await updateJob(job.jobID, (j) => ({ ...j, status: "COMPLETED", endDateTime: isoDateTime(o.now()) }));
    } catch (err) {
      // The store went away (shutdown) or broke: recover() finishes the record on the next start.
      o.logger.error("job runner failed", { jobID: job.jobID, error: String(err) });
    } finally {
      for (const id of ids) busy.delete(id);
    }
  }

  return {
    launcher,
    isBusy: (id) => busy.has(id),
    async submitWith(initiatedBy, ids, tags, prepare) {
      const jobID = newJobId();
      for (const id of ids) busy.add(id);
      try {
        await prepare?.(jobID);
      } catch (err) {
        for (const id of ids) busy.delete(id);
        throw err;
      }
      const job: Job = {
        jobID,
        arn: resourceArn(o.region, o.accountId, "job", jobID),
        type: initiatedBy === "TERMINATE" ? "TERMINATE" : "LAUNCH",
        initiatedBy,
        creationDateTime: isoDateTime(o.now()),
        status: "PENDING",
        participatingServers: ids.map((sourceServerID) => ({ sourceServerID, launchStatus: "PENDING" })),
        tags: tags ?? {},
      };
      const stored: Job & { ferryRunner: string } = { ...job, ferryRunner: o.runnerId };
      await store.jobs.insert(jobID, stored, o.now());
      const p = run(job, ids);
      running.add(p);
      void p.finally(() => running.delete(p));
      return job;
    },
    releaseStaging(id) {
      const p = launcher
        .releaseStagingResources(id)
        .catch((err: unknown) =>
          o.logger.warn("could not release staging resources", { sourceServerID: id, error: String(err) }),
        );
      running.add(p);
      void p.finally(() => running.delete(p));
    },
    async reinstateStaging(id) {
      try {
        await launcher.reinstateStagingResources?.(id);
      } catch (err) {
        o.logger.warn("could not lift the staging release of a re-registered server", {
          sourceServerID: id,
          error: String(err),
        });
      }
    },
    async recover() {
      let n = 0;
      // Nobody watches the console of an instance the previous process booted: its first boot stays unknown.
      for (const r of await store.sourceServers.list()) {
        if (r.launchedInstance?.firstBoot !== "WAITING") continue;
        await updateServer(r.sourceServerID, (x) =>
          x.launchedInstance?.firstBoot === "WAITING"
            ? { ...x, launchedInstance: { ...x.launchedInstance, firstBoot: "UNKNOWN" } }
            : x,
        );
      }
      for (const job of await store.jobs.list()) {
        if (job.status === "COMPLETED") continue;
        // Another control plane on the same database runs it: not ours to fail.
        const owner = (job as Job & { ferryRunner?: string }).ferryRunner;
        if (owner !== undefined && owner !== o.runnerId) continue;
        n++;
        const unfinished = (job.participatingServers ?? []).filter(
          (p) => p.launchStatus === "PENDING" || p.launchStatus === "IN_PROGRESS",
        );
        for (const p of unfinished) {
          await log(job.jobID, p.sourceServerID, {
            event: "LAUNCH_FAILED",
            rawError:
              "The control plane restarted while this job ran; the launch did not finish. Start it again.",
          });
          if (job.type === "LAUNCH")
            await updateServer(p.sourceServerID, (r) => L.launchFailed(r, job.initiatedBy as LaunchKind));
        }
        await log(job.jobID, undefined, { event: "JOB_END" });
        await updateJob(job.jobID, (j) => {
          let next: Job = { ...j, status: "COMPLETED", endDateTime: isoDateTime(o.now()) };
          for (const p of unfinished)
            next = withServer(next, p.sourceServerID, (q) => ({ ...q, launchStatus: "FAILED" }));
          return next;
        });
      }
      return n;
    },
    async close() {
      stop.abort();
      await Promise.allSettled([...running]);
    },
  };
}
