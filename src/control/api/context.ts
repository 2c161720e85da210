/**
 * What an operation handler gets: the store, the clock, the account's
 * region/id, and the caller. Also the shared helpers every handler uses
 * (initialization check, lookups that answer ResourceNotFoundException,
 * pagination).
 */
import type { z } from "zod";
import type { Store, AccessKeyScope } from "../store/store.ts";
import type { AccessKeys } from "../auth/access-keys.ts";
import type { KeyAndCert } from "../../lib/pki.ts";
import type { SourceServerRecord, ReplicationStateOptions } from "../../model/source-server.ts";
import { notFound, uninitialized, validationError } from "../../model/api-errors.ts";
import type { JobRunner } from "../jobs/runner.ts";

export interface Caller {
  accessKeyId: string;
  scope: AccessKeyScope;
  sourceServerID?: string;
}

export interface OpContext {
  store: Store;
  accessKeys: AccessKeys;
  now(): number;
  region: string;
  accountId: string;
  stateOptions: ReplicationStateOptions;
  reportIntervalSeconds: number;
  /** How long a disconnected server's agent keeps its keys to hear "uninstall" (api/lifecycle.ts). */
  agentUninstallGraceSeconds: number;
  /** Signs source servers' data-plane client certificates (see auth/data-plane-ca.ts). */
  dataPlaneCa: KeyAndCert;
  caller: Caller;
  /** Runs launch jobs; absent when the control plane has no staging store to launch from. */
  jobs?: JobRunner;
}

/** A handler's answer: the HTTP status and the JSON body (undefined → no body). */
export interface OpResult {
  status: number;
  body?: unknown;
  /** The body already serialized as UTF-8 JSON (large listings build it from cached parts). */
  json?: Uint8Array<ArrayBuffer>;
}

export interface Operation<S extends z.ZodType = z.ZodType> {
  input: S;
  handle(ctx: OpContext, input: z.infer<S>): Promise<OpResult>;
}

export function defineOperation<S extends z.ZodType>(
  input: S,
  handle: (ctx: OpContext, input: z.infer<S>) => Promise<OpResult>,
): Operation {
  return { input, handle } as Operation;
}

export async function requireInitialized(ctx: OpContext): Promise<void> {
  if (!(await ctx.store.isInitialized())) throw uninitialized();
}

export async function getServer(ctx: OpContext, id: string): Promise<SourceServerRecord> {
  const r = await ctx.store.sourceServers.get(id);
  if (!r) throw notFound("SOURCE_SERVER", id);
  return r;
}

/** Applies a lifecycle rule to a server with the store's optimistic update; 404 if gone. */
export async function updateServer(
  ctx: OpContext,
  id: string,
  change: (r: SourceServerRecord) => SourceServerRecord,
): Promise<SourceServerRecord> {
  const next = await ctx.store.sourceServers.update(id, change);
  if (!next) throw notFound("SOURCE_SERVER", id);
  return next;
}

/**
 * MGN pages with `maxResults`/`nextToken`; Ferry's tokens are opaque
 * base64url offsets into the (filtered, creation-ordered) list.
 */
export function paginate<T>(
  items: T[],
  maxResults: number | undefined,
  nextToken: string | undefined,
  defaultMax = 1000,
): { items: T[]; nextToken?: string } {
  let offset = 0;
  if (nextToken !== undefined && nextToken !== "") {
    const m = /^o(\d{1,9})$/.exec(Buffer.from(nextToken, "base64url").toString("utf8"));
    if (!m)
      throw validationError(
        `nextToken '${nextToken}' is not a token this service issued. Start again without nextToken.`,
        "fieldValidationFailed",
        [{ name: "nextToken", message: "invalid token" }],
      );
    offset = Number(m[1]);
  }
  const max = maxResults ?? defaultMax;
  const page = items.slice(offset, offset + max);
  const out: { items: T[]; nextToken?: string } = { items: page };
  if (offset + max < items.length) out.nextToken = Buffer.from(`o${offset + max}`).toString("base64url");
  return out;
}
