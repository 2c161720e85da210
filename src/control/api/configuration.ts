/** InitializeService, replication templates, and per-server replication and launch configuration. */
import { z } from "zod";
import * as S from "../../model/mgn-shapes.gen.ts";
import { applyPatch, checkSettingsSupported } from "../../model/replication-configuration.ts";
import { newReplicationConfigurationTemplateId, resourceArn } from "../../model/ids.ts";
import { conflict, notFound } from "../../model/api-errors.ts";
import type { ReplicationConfigurationTemplate } from "../../model/mgn-shapes.gen.ts";
import type { Operation } from "./context.ts";
import { FerryLaunchSettings } from "../../model/launch.ts";
import { defineOperation, getServer, paginate, requireInitialized, updateServer } from "./context.ts";

const initializeService = defineOperation(S.InitializeServiceRequest, async (ctx) => {
  await ctx.store.initialize(ctx.now());
  return { status: 204 };
});

const createTemplate = defineOperation(
  S.CreateReplicationConfigurationTemplateRequest,
  async (ctx, input) => {
    await requireInitialized(ctx);
    checkSettingsSupported(input);
    const id = newReplicationConfigurationTemplateId();
    const template: ReplicationConfigurationTemplate = {
      replicationConfigurationTemplateID: id,
      arn: resourceArn(ctx.region, ctx.accountId, "replication-configuration-template", id),
      ...input,
      tags: input.tags ?? {},
    };
    await ctx.store.templates.insert(id, template, ctx.now());
    return { status: 201, body: template };
  },
);

const describeTemplates = defineOperation(
  S.DescribeReplicationConfigurationTemplatesRequest,
  async (ctx, input) => {
    await requireInitialized(ctx);
    const ids = input.replicationConfigurationTemplateIDs?.length
      ? new Set(input.replicationConfigurationTemplateIDs)
      : undefined;
    const all = (await ctx.store.templates.list()).filter(
      (t) => !ids || ids.has(t.replicationConfigurationTemplateID),
    );
    const page = paginate(all, input.maxResults, input.nextToken);
    return {
      status: 200,
      body: { items: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) },
    };
  },
);

/**
 * Ferry's default settings carry `stagingAreaSubnetId: ""` (no replicator pool: any
 * replicator). An update accepts that value back, so a Get → Update round trip of
 * what the API returned never fails on MGN's subnet-id pattern.
 */
const NoPoolOrSubnet = S.SubnetID.or(z.literal("")).optional();

const updateTemplate = defineOperation(
  S.UpdateReplicationConfigurationTemplateRequest.extend({ stagingAreaSubnetId: NoPoolOrSubnet }),
  async (ctx, input) => {
    await requireInitialized(ctx);
    const { replicationConfigurationTemplateID: id, arn: _arn, ...patch } = input;
    const next = await ctx.store.templates.update(id, (t) => {
      const merged = applyPatch(t, patch);
      checkSettingsSupported(merged);
      return merged;
    });
    if (!next) throw notFound("REPLICATION_CONFIGURATION_TEMPLATE", id);
    return { status: 200, body: next };
  },
);

const deleteTemplate = defineOperation(
  S.DeleteReplicationConfigurationTemplateRequest,
  async (ctx, input) => {
    await requireInitialized(ctx);
    if (!(await ctx.store.templates.delete(input.replicationConfigurationTemplateID))) {
      throw notFound("REPLICATION_CONFIGURATION_TEMPLATE", input.replicationConfigurationTemplateID);
    }
    return { status: 204 };
  },
);

const getReplicationConfiguration = defineOperation(
  S.GetReplicationConfigurationRequest,
  async (ctx, input) => {
    await requireInitialized(ctx);
    return { status: 200, body: (await getServer(ctx, input.sourceServerID)).replicationConfiguration };
  },
);

const updateReplicationConfiguration = defineOperation(
  S.UpdateReplicationConfigurationRequest.extend({ stagingAreaSubnetId: NoPoolOrSubnet }),
  async (ctx, input) => {
    await requireInitialized(ctx);
    const { sourceServerID, accountID: _a, ...patch } = input;
    const next = await updateServer(ctx, sourceServerID, (r) => {
      if (r.replication.control === "DISCONNECTED") {
        throw conflict(
          "SOURCE_SERVER",
          sourceServerID,
          `UpdateReplicationConfiguration refused: source server ${sourceServerID} is disconnected.`,
        );
      }
      const merged = applyPatch(r.replicationConfiguration, patch);
      checkSettingsSupported(merged);
      return { ...r, replicationConfiguration: merged };
    });
    return { status: 200, body: next.replicationConfiguration };
  },
);

const getLaunchConfiguration = defineOperation(S.GetLaunchConfigurationRequest, async (ctx, input) => {
  await requireInitialized(ctx);
  return { status: 200, body: (await getServer(ctx, input.sourceServerID)).launchConfiguration };
});

/** MGN's request plus Ferry's own launch settings (`ferry`: target, image format, …; see docs/launch.md). */
const UpdateLaunchConfigurationInput = S.UpdateLaunchConfigurationRequest.extend({
  ferry: FerryLaunchSettings.optional(),
});

const updateLaunchConfiguration = defineOperation(UpdateLaunchConfigurationInput, async (ctx, input) => {
  await requireInitialized(ctx);
  const { sourceServerID, accountID: _a, ...patch } = input;
  const next = await updateServer(ctx, sourceServerID, (r) => ({
    ...r,
    launchConfiguration: applyPatch(r.launchConfiguration, patch),
  }));
  return { status: 200, body: next.launchConfiguration };
});

export const configurationOperations: Record<string, Operation> = {
  InitializeService: initializeService,
  CreateReplicationConfigurationTemplate: createTemplate,
  DescribeReplicationConfigurationTemplates: describeTemplates,
  UpdateReplicationConfigurationTemplate: updateTemplate,
  DeleteReplicationConfigurationTemplate: deleteTemplate,
  GetReplicationConfiguration: getReplicationConfiguration,
  UpdateReplicationConfiguration: updateReplicationConfiguration,
  GetLaunchConfiguration: getLaunchConfiguration,
  UpdateLaunchConfiguration: updateLaunchConfiguration,
};
