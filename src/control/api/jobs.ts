/**
 * Jobs, and the launch operations that create them: StartTest, StartCutover
 * and TerminateTargetInstances check every server against MGN's lifecycle
 * rules, store a job and return it PENDING; the job runner (control/jobs)
 * does the work in the background. Without a launcher (a control plane with
 * no staging store attached) they refuse clearly — never a pretend job.
 */
import * as S from "../../model/mgn-shapes.gen.ts";
import * as L from "../../model/lifecycle.ts";
import { conflict, notFound, validationError } from "../../model/api-errors.ts";
import { toSourceServer } from "../../model/source-server.ts";
import type { Operation, OpContext } from "./context.ts";
import { defineOperation, getServer, paginate, requireInitialized, updateServer } from "./context.ts";
import type { JobRunner, LaunchKind } from "../jobs/runner.ts";
import { deleteJobLog } from "../jobs/job-log.ts";

const describeJobs = defineOperation(S.DescribeJobsRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const f = input.filters ?? {};
  const ids = f.jobIDs?.length ? new Set(f.jobIDs) : undefined;
  const from = f.fromDate ? Date.parse(f.fromDate) : -Infinity;
  const to = f.toDate ? Date.parse(f.toDate) : Infinity;
  const jobs = (await ctx.store.jobs.list()).filter((j) => {
    const t = j.creationDateTime ? Date.parse(j.creationDateTime) : 0;
    return (!ids || ids.has(j.jobID)) && t >= from && t <= to;
  });
  const page = paginate(jobs, input.maxResults, input.nextToken);
  // The runner's bookkeeping stays inside.
  const items = page.items.map((j) => {
    const { ferryRunner: _r, ...job } = j as typeof j & { ferryRunner?: string };
    return job;
  });
  return {
    status: 200,
    body: { items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) },
  };
});

const describeJobLogItems = defineOperation(S.DescribeJobLogItemsRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  if (!(await ctx.store.jobs.get(input.jobID))) throw notFound("JOB", input.jobID);
  const page = paginate(await ctx.store.jobLogItems(input.jobID), input.maxResults, input.nextToken);
  return {
    status: 200,
    body: { items: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) },
  };
});

const deleteJob = defineOperation(S.DeleteJobRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const job = await ctx.store.jobs.get(input.jobID);
  if (!job) throw notFound("JOB", input.jobID);
  if (job.status !== "COMPLETED")
    throw conflict(
      "JOB",
      input.jobID,
      `DeleteJob refused: job ${input.jobID} is ${job.status}; wait for it to complete.`,
    );
  await ctx.store.jobs.delete(input.jobID);
  await deleteJobLog(ctx.store, input.jobID);
  return { status: 204 };
});

/** The job runner, or the clear refusal of a control plane without a staging store. */
export function requireJobs(ctx: OpContext, operation: string): JobRunner {
  if (ctx.jobs) return ctx.jobs;
  throw validationError(
    `${operation} is not available on this control plane: it has no staging store to launch from. Start it with a staging store (ferry up, or ferry server --staging-store <url>). Nothing was started and no job was created.`,
    "other",
  );
}

function launchOperation(kind: LaunchKind, operation: string): Operation {
  const schema = kind === "START_TEST" ? S.StartTestRequest : S.StartCutoverRequest;
  return defineOperation(schema, async (ctx, input) => {
    await requireInitialized(ctx);
    const ids = [...new Set(input.sourceServerIDs)];
    const servers = await Promise.all(ids.map((id) => getServer(ctx, id)));
    const jobs = requireJobs(ctx, operation);
    // Check every server before changing any: a refused call changes nothing.
    for (const r of servers)
      L.startLaunch(r, kind, "mgnjob-00000000000000000", ctx.now(), jobs.isBusy(r.sourceServerID));
    const job = await jobs.submitWith(kind, ids, input.tags, async (jobID) => {
      for (const id of ids)
        await updateServer(ctx, id, (r) => L.startLaunch(r, kind, jobID, ctx.now(), false));
    });
    const { ferryRunner: _r, ...shown } = job as typeof job & { ferryRunner?: string };
    return { status: 202, body: { job: shown } };
  });
}

const terminateTargetInstances = defineOperation(S.TerminateTargetInstancesRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const ids = [...new Set(input.sourceServerIDs)];
  const servers = await Promise.all(ids.map((id) => getServer(ctx, id)));
  const jobs = requireJobs(ctx, "TerminateTargetInstances");
  for (const r of servers) {
    L.assertTerminable(r);
    if (jobs.isBusy(r.sourceServerID))
      throw conflict(
        "SOURCE_SERVER",
        r.sourceServerID,
        `TerminateTargetInstances refused: a job for source server ${r.sourceServerID} is still running; wait for it to end.`,
      );
  }
  const job = await jobs.submitWith("TERMINATE", ids, input.tags);
  const { ferryRunner: _r, ...shown } = job as typeof job & { ferryRunner?: string };
  return { status: 202, body: { job: shown } };
});

const finalizeCutover = defineOperation(S.FinalizeCutoverRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  await getServer(ctx, input.sourceServerID);
  const jobs = requireJobs(ctx, "FinalizeCutover");
  const next = await updateServer(ctx, input.sourceServerID, (r) => L.finalizeCutover(r, ctx.now()));
  jobs.releaseStaging(input.sourceServerID);
  return { status: 200, body: toSourceServer(next, ctx.now(), ctx.stateOptions) };
});

export const jobOperations: Record<string, Operation> = {
  DescribeJobs: describeJobs,
  DescribeJobLogItems: describeJobLogItems,
  DeleteJob: deleteJob,
  StartTest: launchOperation("START_TEST", "StartTest"),
  StartCutover: launchOperation("START_CUTOVER", "StartCutover"),
  TerminateTargetInstances: terminateTargetInstances,
  FinalizeCutover: finalizeCutover,
};
