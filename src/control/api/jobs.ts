/**
 * Jobs, and the launch operations that create them. Launching (StartTest,
 * StartCutover, FinalizeCutover, TerminateTargetInstances) needs a launch
 * target, which Ferry does not have yet: those operations check their input
 * and the servers, then refuse clearly — never a pretend job.
 */
import * as S from "../../model/mgn-shapes.gen.ts";
import { notFound, validationError } from "../../model/api-errors.ts";
import type { Operation, OpContext } from "./context.ts";
import { defineOperation, getServer, paginate, requireInitialized } from "./context.ts";

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
  return {
    status: 200,
    body: { items: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) },
  };
});

const describeJobLogItems = defineOperation(S.DescribeJobLogItemsRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const page = paginate(await ctx.store.jobLogItems(input.jobID), input.maxResults, input.nextToken);
  return {
    status: 200,
    body: { items: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) },
  };
});

const deleteJob = defineOperation(S.DeleteJobRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  if (!(await ctx.store.jobs.delete(input.jobID))) throw notFound("JOB", input.jobID);
  return { status: 204 };
});

async function launchUnavailable(ctx: OpContext, operation: string, ids: string[]): Promise<never> {
  await requireInitialized(ctx);
  for (const id of ids) await getServer(ctx, id);
  throw validationError(
    `${operation} is not available in this Ferry version: launching test and cutover instances needs a launch target, which is not implemented yet. Nothing was started and no job was created.`,
    "other",
  );
}

export const jobOperations: Record<string, Operation> = {
  DescribeJobs: describeJobs,
  DescribeJobLogItems: describeJobLogItems,
  DeleteJob: deleteJob,
  StartTest: defineOperation(S.StartTestRequest, (ctx, i) =>
    launchUnavailable(ctx, "StartTest", i.sourceServerIDs),
  ),
  StartCutover: defineOperation(S.StartCutoverRequest, (ctx, i) =>
    launchUnavailable(ctx, "StartCutover", i.sourceServerIDs),
  ),
  TerminateTargetInstances: defineOperation(S.TerminateTargetInstancesRequest, (ctx, i) =>
    launchUnavailable(ctx, "TerminateTargetInstances", i.sourceServerIDs),
  ),
  FinalizeCutover: defineOperation(S.FinalizeCutoverRequest, (ctx, i) =>
    launchUnavailable(ctx, "FinalizeCutover", [i.sourceServerID]),
  ),
};
