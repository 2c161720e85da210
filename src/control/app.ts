/**
 * The HTTP surface: MGN's REST-JSON operations (`POST /<Operation>`, tags on
 * `/tags/{arn}`), the agent-facing routes (`/ferry/agent/*`), `/healthz` and
 * `/metrics`. Every API request is SigV4-verified and scope-checked before
 * its handler runs; this file is the one place errors become responses.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { z } from "zod";
import type { OpContext, Operation, OpResult, Caller } from "./api/context.ts";
import { sourceServerOperations } from "./api/source-servers.ts";
import { configurationOperations } from "./api/configuration.ts";
import { jobOperations } from "./api/jobs.ts";
import { parseTagsBody, withTags } from "./api/tags.ts";
import { register, report } from "./agent-api/handlers.ts";
import { registerReplicator } from "./agent-api/replicators.ts";
import { assignment } from "./agent-api/assignment.ts";
import { noteRefusedSignature } from "./agent-api/auth-failures.ts";
import { acknowledgeUninstall, refuseRevokedAgentKey } from "./api/lifecycle.ts";
import { createAgentPackageRoutes } from "./agent-package.ts";
import { REPLICATOR_REGISTER_PATH, ReplicatorRegisterRequest } from "../model/replicator.ts";
import {
  AGENT_INSTALLER_PATH,
  AGENT_PACKAGE_PATH,
  AGENT_PACKAGE_SHA256_PATH,
  AGENT_REGISTER_PATH,
  AGENT_REPORT_PATH,
  AGENT_ASSIGNMENT_PATH,
  AGENT_UNINSTALLED_PATH,
  AgentAssignmentRequest,
  AgentUninstalledRequest,
  AgentRegisterRequest,
  AgentReportRequest,
} from "../model/agent-api.ts";
import { accessDenied, isMgnErrorType, MGN_ERROR_STATUS, validationError } from "../model/api-errors.ts";
import { FerryError } from "../lib/errors.ts";
import { verifySigV4 } from "./sigv4/verify.ts";
import type { WireRequest } from "./sigv4/canonical.ts";
import type { Logger } from "../lib/log.ts";
import type { Metrics } from "./metrics.ts";

export const OPERATIONS: Record<string, Operation> = {
  ...configurationOperations,
  ...sourceServerOperations,
  ...jobOperations,
};

const MAX_BODY_BYTES = 1 << 20;

export interface AppDeps {
  base: Omit<OpContext, "caller">;
  logger: Logger;
  metrics: Metrics;
  /** Extra gauges for /metrics (source servers by state, …). */
  gauges(): Promise<Record<string, number>>;
  /** Where the agent package published to this control plane is kept (agent-package.ts). */
  agentPackageDir?: string;
}

type Env = { Bindings: { incoming?: IncomingMessage } };

/** The request as it arrived, for the signature: raw target and raw header list when served by Node. */
function wireRequest(c: Context<Env>, body: Uint8Array): WireRequest {
  const incoming = c.env?.incoming;
  let target: string;
  let headers: [string, string][];
  if (incoming?.url && incoming.rawHeaders) {
    target = incoming.url;
    headers = [];
    for (let i = 0; i + 1 < incoming.rawHeaders.length; i += 2)
      headers.push([incoming.rawHeaders[i]!, incoming.rawHeaders[i + 1]!]);
  } else {
    const u = new URL(c.req.url);
    target = `${u.pathname}${u.search}`;
    headers = [...c.req.raw.headers.entries()];
  }
  const q = target.indexOf("?");
  return {
    method: c.req.method,
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? "" : target.slice(q + 1),
    headers,
    body,
  };
}

function errorResponse(c: Context<Env>, err: unknown, requestId: string, logger: Logger): Response {
  let type = "InternalServerException";
  let body: Record<string, unknown>;
  if (err instanceof FerryError && isMgnErrorType(err.code)) {
    type = err.code;
    body = { message: err.message, code: err.code, ...err.details };
  } else {
    logger.error("internal error", { requestId, error: err instanceof Error ? err.stack : String(err) });
    body = { message: `Internal error (request ${requestId}); see the server log.` };
  }
  const status = MGN_ERROR_STATUS[type as keyof typeof MGN_ERROR_STATUS] ?? 500;
  return c.json(body, status as 400, { "x-amzn-ErrorType": type, "x-amzn-RequestId": requestId });
}

function parseJson(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return {};
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw validationError("The request body is not valid JSON.", "cannotParse");
  }
}

function validate<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const fieldList = r.error.issues.map((i) => ({ name: i.path.join(".") || "(body)", message: i.message }));
  throw validationError(
    `Invalid request: ${fieldList.map((f) => `${f.name}: ${f.message}`).join("; ")}`,
    "fieldValidationFailed",
    fieldList,
  );
}

export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const { base, logger, metrics } = deps;

  async function authenticate(c: Context<Env>, body: Uint8Array): Promise<Caller> {
    let resolved: Awaited<ReturnType<typeof base.accessKeys.resolve>>;
    const { accessKeyId } = await verifySigV4(wireRequest(c, body), {
      service: "mgn",
      region: base.region,
      now: base.now(),
      lookupSecret: async (id) => (resolved = await base.accessKeys.resolve(id))?.secret,
    }).catch(async (err: unknown) => {
      await noteRefusedSignature(base, c.req.raw.headers, err);
      throw err;
    });
    const row = resolved!.row;
    const caller: Caller = {
      accessKeyId,
      scope: row.scope,
      ...(row.sourceServerID ? { sourceServerID: row.sourceServerID } : {}),
    };
    // A disconnected server's agent past its uninstall grace period: the key is revoked now.
    await refuseRevokedAgentKey(base, caller);
    return caller;
  }

  /** Reads, authenticates, runs, logs and measures one API call. */
  async function serve(
    c: Context<Env>,
    operation: string,
    run: (ctx: OpContext, body: unknown) => Promise<OpResult>,
  ): Promise<Response> {
    const started = performance.now();
    const requestId = randomUUID();
    let res: Response;
    let caller: Caller | undefined;
    try {
      // Refuse an announced oversize body before buffering it.
      const declared = Number(c.req.header("content-length") ?? "0");
      if (declared > MAX_BODY_BYTES) {
        throw validationError(
          `The request body is ${declared} bytes; the limit is ${MAX_BODY_BYTES}.`,
          "other",
        );
      }
      const buf = new Uint8Array(await c.req.arrayBuffer());
      if (buf.length > MAX_BODY_BYTES)
        throw validationError(
          `The request body is ${buf.length} bytes; the limit is ${MAX_BODY_BYTES}.`,
          "other",
        );
      caller = await authenticate(c, buf);
      const out = await run({ ...base, caller }, parseJson(buf));
      const json = out.json ?? (out.body === undefined ? undefined : Buffer.from(JSON.stringify(out.body)));
      res =
        json === undefined
          ? c.body(null, out.status as 204, { "x-amzn-RequestId": requestId })
          : c.body(json, out.status as 200, {
              "x-amzn-RequestId": requestId,
              "content-type": "application/json",
            });
    } catch (err) {
      res = errorResponse(c, err, requestId, logger);
    }
    const seconds = (performance.now() - started) / 1000;
    metrics.observe(operation, res.status, seconds);
    // Heartbeats (every agent every few seconds) would drown the log: successful ones are debug.
    const level =
      res.status >= 500
        ? "error"
        : operation === "ferry:AgentReport" && res.status === 200
          ? "debug"
          : "info";
    logger[level]("request", {
      requestId,
      operation,
      status: res.status,
      errorType: res.headers.get("x-amzn-ErrorType") ?? undefined,
      accessKeyId: caller?.accessKeyId,
      durationMs: Math.round(seconds * 1e6) / 1000,
    });
    return res;
  }

  const operatorOnly = (ctx: OpContext, operation: string) => {
    if (ctx.caller.scope !== "operator") {
      throw accessDenied(
        `User ${ctx.caller.accessKeyId} (scope ${ctx.caller.scope}) is not authorized to perform: mgn:${operation}. Use an operator access key.`,
      );
    }
  };

  // Healthy means able to answer: the database must respond (several servers behind a load
  // balancer take a server out when its database connection is gone).
  app.get("/healthz", async (c) => {
    try {
      const initialized = await base.store.isInitialized();
      return c.json({ status: "ok", initialized });
    } catch (err) {
      logger.error("health check failed", { error: err instanceof Error ? err.message : String(err) });
      return c.json({ status: "unavailable", reason: "database" }, 503);
    }
  });
  app.get("/metrics", async (c) =>
    c.text(metrics.render(await deps.gauges()), 200, { "content-type": "text/plain; version=0.0.4" }),
  );

  app.post(AGENT_REGISTER_PATH, (c) =>
    serve(c, "ferry:AgentRegister", (ctx, body) => register(ctx, validate(AgentRegisterRequest, body))),
  );
  app.post(AGENT_REPORT_PATH, (c) =>
    serve(c, "ferry:AgentReport", (ctx, body) => report(ctx, validate(AgentReportRequest, body))),
  );
  app.post(AGENT_ASSIGNMENT_PATH, (c) =>
    serve(c, "ferry:AgentAssignment", (ctx, body) => assignment(ctx, validate(AgentAssignmentRequest, body))),
  );
  app.post(AGENT_UNINSTALLED_PATH, (c) =>
    serve(c, "ferry:AgentUninstalled", (ctx, body) =>
      acknowledgeUninstall(ctx, validate(AgentUninstalledRequest, body)),
    ),
  );
  app.post(REPLICATOR_REGISTER_PATH, (c) =>
    serve(c, "ferry:ReplicatorRegister", (ctx, body) =>
      registerReplicator(ctx, validate(ReplicatorRegisterRequest, body)),
    ),
  );

  if (deps.agentPackageDir) {
    const pkg = createAgentPackageRoutes({
      dir: deps.agentPackageDir,
      authenticate,
      fail: (c, err) => errorResponse(c, err, randomUUID(), logger),
      logger,
    });
    app.get(AGENT_PACKAGE_PATH, (c) => pkg.download(c, "package"));
    app.get(AGENT_PACKAGE_SHA256_PATH, (c) => pkg.download(c, "sha256"));
    app.get(AGENT_INSTALLER_PATH, (c) => pkg.download(c, "installer"));
    app.put(AGENT_PACKAGE_PATH, (c) => pkg.publish(c, "package"));
    app.put(AGENT_INSTALLER_PATH, (c) => pkg.publish(c, "installer"));
  }

  const tagRoute =
    (
      operation: string,
      run: (ctx: OpContext, arn: string, body: unknown, c: Context<Env>) => Promise<OpResult>,
    ) =>
    (c: Context<Env>) =>
      serve(c, operation, async (ctx, body) => {
        operatorOnly(ctx, operation);
        return run(ctx, decodeURIComponent(c.req.param("arn") ?? ""), body, c);
      });
  app.post(
    "/tags/:arn{.+}",
    tagRoute("TagResource", async (ctx, arn, body) => {
      const add = parseTagsBody(body);
      await withTags(ctx, arn, (t) => ({ ...t, ...add }));
      return { status: 200 };
    }),
  );
  app.delete(
    "/tags/:arn{.+}",
    tagRoute("UntagResource", async (ctx, arn, _body, c) => {
      const keys = c.req.queries("tagKeys") ?? [];
      if (!keys.length)
        throw validationError("tagKeys is required.", "fieldValidationFailed", [
          { name: "tagKeys", message: "required" },
        ]);
      await withTags(ctx, arn, (t) =>
        Object.fromEntries(Object.entries(t).filter(([k]) => !keys.includes(k))),
      );
      return { status: 200 };
    }),
  );
  app.get(
    "/tags/:arn{.+}",
    tagRoute("ListTagsForResource", async (ctx, arn) => ({
      status: 200,
      body: { tags: await withTags(ctx, arn) },
    })),
  );

  app.post("/:operation", (c) => {
    const name = c.req.param("operation");
    const op = Object.hasOwn(OPERATIONS, name) ? OPERATIONS[name] : undefined;
    return serve(c, op ? name : "unknown", async (ctx, body) => {
      if (!op) throw validationError(`Unknown operation '${name}'.`, "unknownOperation");
      operatorOnly(ctx, name);
      return op.handle(ctx, validate(op.input, body));
    });
  });

  app.notFound((c) =>
    errorResponse(
      c,
      new FerryError("NotFoundException", `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`),
      randomUUID(),
      logger,
    ),
  );
  return app;
}
