/** TagResource / UntagResource / ListTagsForResource on `/tags/{resourceArn}`. */
import { parseResourceArn } from "../../model/ids.ts";
import { notFound, validationError } from "../../model/api-errors.ts";
import { TagsMap } from "../../model/mgn-shapes.gen.ts";
import type { OpContext } from "./context.ts";

const MAX_TAGS = 50;

function resolve(ctx: OpContext, arn: string) {
  const parsed = parseResourceArn(arn);
  if (!parsed || parsed.region !== ctx.region || parsed.accountId !== ctx.accountId)
    throw notFound(
      "RESOURCE",
      arn,
      `Resource ${arn} was not found in this service (region ${ctx.region}, account ${ctx.accountId}).`,
    );
  return parsed;
}

/** Reads or rewrites the tags of the resource behind `arn`; `change` undefined only reads. */
export async function withTags(
  ctx: OpContext,
  arn: string,
  change?: (tags: Record<string, string>) => Record<string, string>,
): Promise<Record<string, string>> {
  const { kind, id } = resolve(ctx, arn);
  const apply = <T extends { tags?: Record<string, string> | undefined }>(doc: T): T => {
    const tags = change!({ ...(doc.tags ?? {}) });
    if (Object.keys(tags).length > MAX_TAGS) {
      throw validationError(
        `A resource can have at most ${MAX_TAGS} tags; this change would give ${arn} ${Object.keys(tags).length}.`,
        "fieldValidationFailed",
        [{ name: "tags", message: `at most ${MAX_TAGS} tags` }],
      );
    }
    return { ...doc, tags };
  };
  const table =
    kind === "source-server"
      ? ctx.store.sourceServers
      : kind === "job"
        ? ctx.store.jobs
        : ctx.store.templates;
  const found = change
    ? await (
        table.update as (
          id: string,
          f: (d: { tags?: Record<string, string> }) => unknown,
        ) => Promise<{ tags?: Record<string, string> } | undefined>
      )(id, apply)
    : await table.get(id);
  if (!found) throw notFound("RESOURCE", arn, `Resource ${arn} was not found.`);
  return found.tags ?? {};
}

export function parseTagsBody(body: unknown): Record<string, string> {
  const r = TagsMap.safeParse((body as { tags?: unknown } | undefined)?.tags);
  if (!r.success)
    throw validationError("tags must be a map of up to 50 string keys and values.", "fieldValidationFailed", [
      { name: "tags", message: r.error.issues[0]?.message ?? "invalid" },
    ]);
  return r.data;
}
