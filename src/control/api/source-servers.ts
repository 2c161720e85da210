/** DescribeSourceServers and the replication/lifecycle operations on one source server. */
import { z } from "zod";
import * as S from "../../model/mgn-shapes.gen.ts";
import * as L from "../../model/lifecycle.ts";
import { conflict } from "../../model/api-errors.ts";
import { sourceServerJsonParts, toSourceServer } from "../../model/source-server.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import type { OpContext, Operation } from "./context.ts";
import { defineOperation, getServer, paginate, requireInitialized, updateServer } from "./context.ts";

function project(ctx: OpContext, r: SourceServerRecord) {
  return toSourceServer(r, ctx.now(), ctx.stateOptions);
}

const describeSourceServers = defineOperation(S.DescribeSourceServersRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const f = input.filters ?? {};
  const ids = f.sourceServerIDs && f.sourceServerIDs.length ? new Set(f.sourceServerIDs) : undefined;
  const states =
    f.lifeCycleStates && f.lifeCycleStates.length ? new Set<string>(f.lifeCycleStates) : undefined;
  const types =
    f.replicationTypes && f.replicationTypes.length ? new Set<string>(f.replicationTypes) : undefined;
  // Ferry has no applications yet: an applicationIDs filter matches nothing.
  const apps = f.applicationIDs && f.applicationIDs.length ? f.applicationIDs : undefined;
  const all = await ctx.store.sourceServers.list();
  const matching = all.filter(
    (r) =>
      (!ids || ids.has(r.sourceServerID)) &&
      (f.isArchived === undefined || r.isArchived === f.isArchived) &&
      (!states || states.has(r.lifeCycle.state)) &&
      (!types || types.has(r.replicationType)) &&
      !apps,
  );
  const page = paginate(matching, input.maxResults, input.nextToken);
  const now = ctx.now();
  const parts: Buffer[] = [Buffer.from('{"items":[')];
  const comma = Buffer.from(",");
  page.items.forEach((r, i) => {
    if (i > 0) parts.push(comma);
    parts.push(...sourceServerJsonParts(r, now, ctx.stateOptions));
  });
  parts.push(Buffer.from(`]${page.nextToken ? `,"nextToken":${JSON.stringify(page.nextToken)}` : ""}}`));
  return { status: 200, json: Buffer.concat(parts) };
});

const ById = z.object({ sourceServerID: S.SourceServerID, accountID: S.AccountID.optional() });

function serverOp(change: (ctx: OpContext, r: SourceServerRecord) => SourceServerRecord): Operation {
  return defineOperation(ById, async (ctx, input) => {
    await requireInitialized(ctx);
    const next = await updateServer(ctx, input.sourceServerID, (r) => change(ctx, r));
    return { status: 200, body: project(ctx, next) };
  });
}

const changeServerLifeCycleState = defineOperation(
  S.ChangeServerLifeCycleStateRequest,
  async (ctx, input) => {
    await requireInitialized(ctx);
    if (ctx.jobs?.isBusy(input.sourceServerID))
      throw conflict(
        "SOURCE_SERVER",
        input.sourceServerID,
        `ChangeServerLifeCycleState refused: a launch job for source server ${input.sourceServerID} is still running; wait for it to end (DescribeJobs).`,
      );
    const next = await updateServer(ctx, input.sourceServerID, (r) =>
      L.changeLifeCycleState(r, input.lifeCycle.state, ctx.now()),
    );
    return { status: 200, body: project(ctx, next) };
  },
);

const disconnectFromService = defineOperation(ById, async (ctx, input) => {
  await requireInitialized(ctx);
  const next = await updateServer(ctx, input.sourceServerID, (r) => L.disconnectFromService(r, ctx.now()));
  // The agent's keys stay until it has heard "uninstall" and acknowledged (api/lifecycle.ts).
  ctx.jobs?.releaseStaging(input.sourceServerID);
  return { status: 200, body: project(ctx, next) };
});

const deleteSourceServer = defineOperation(S.DeleteSourceServerRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  const r = await getServer(ctx, input.sourceServerID);
  L.assertDeletable(r);
  await ctx.store.sourceServers.delete(input.sourceServerID);
  await ctx.store.accessKeys.deleteForServer(input.sourceServerID);
  return { status: 204 };
});

export const sourceServerOperations: Record<string, Operation> = {
  DescribeSourceServers: describeSourceServers,
  StartReplication: serverOp((ctx, r) => L.startReplication(r, ctx.now())),
  StopReplication: serverOp((ctx, r) => L.stopReplication(r, ctx.now())),
  PauseReplication: serverOp((ctx, r) => L.pauseReplication(r, ctx.now())),
  ResumeReplication: serverOp((ctx, r) => L.resumeReplication(r, ctx.now())),
  RetryDataReplication: serverOp((ctx, r) => L.retryDataReplication(r, ctx.now(), ctx.stateOptions)),
  ChangeServerLifeCycleState: changeServerLifeCycleState,
  DisconnectFromService: disconnectFromService,
  MarkAsArchived: serverOp((_ctx, r) => L.markAsArchived(r)),
  DeleteSourceServer: deleteSourceServer,
};
