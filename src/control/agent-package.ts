/**
 * The agent package served by the control plane, for sources that download
 * it from here instead of a bucket (ferry-installer-init without
 * `--s3-endpoint`). `GET /ferry/agent/package` and `.sha256` need a
 * SigV4-signed request from any Ferry key (the installer signs with its
 * install key); `PUT` needs an operator key and the body's SHA-256 in
 * `x-ferry-sha256`, checked before anything is kept. Files live in one
 * package directory (default `<data-dir>/agent-package`): the package, its
 * `.sha256` in sha256sum format, the installer script and `release.json`.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { IncomingMessage } from "node:http";
import type { Context as HonoContext } from "hono";
import { FerryError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import {
  AGENT_PACKAGE_PATH,
  AGENT_VERSION_HEADER,
  AgentPackagePublished,
  SHA256_HEADER,
} from "../model/agent-api.ts";
import { accessDenied, validationError } from "../model/api-errors.ts";
import { isoDateTime } from "../model/duration.ts";
import type { Caller } from "./api/context.ts";

/** The names the installer and `ferry release` use (src/release/build.ts). */
export const PACKAGE_FILE = "ferry-agent-linux-x64.tar.gz";
export const INSTALLER_FILE = "ferry-installer-init";
const RELEASE_FILE = "release.json";

/** The Node runtime alone is ~43 MiB compressed; leave room, refuse the absurd. */
export const MAX_PUBLISH_BYTES = 512 * 1024 * 1024;

/** `FERRY_AGENT_PACKAGE_DIR` (one directory several servers share), else `<dataDir>/agent-package`. */
export function resolveAgentPackageDir(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_AGENT_PACKAGE_DIR || join(dataDir, "agent-package");
}

/** The app's context (its Node request is kept for the signature check). */
type Context = HonoContext<{ Bindings: { incoming?: IncomingMessage } }>;

export interface AgentPackageRoutesOptions {
  dir: string;
  /** The app's SigV4 check: the caller, or an MGN-style authentication error. */
  authenticate(c: Context, body: Uint8Array): Promise<Caller>;
  /** The app's one error mapper. */
  fail(c: Context, err: unknown): Response;
  logger: Logger;
}

export type Served = "package" | "sha256" | "installer";

function notPublished(what: string): FerryError {
  return new FerryError(
    "ResourceNotFoundException",
    `No agent ${what} has been published to this control plane. Run \`ferry release publish --endpoint <this control plane's URL>\` with an operator key (or install from a bucket with --s3-endpoint).`,
    { kind: "user", details: { resourceType: "AGENT_PACKAGE" } },
  );
}

function fileOf(what: Served): string {
  if (what === "installer") return INSTALLER_FILE;
  return what === "sha256" ? `${PACKAGE_FILE}.sha256` : PACKAGE_FILE;
}

async function readRelease(dir: string): Promise<AgentPackagePublished | undefined> {
  try {
    return AgentPackagePublished.parse(JSON.parse(await readFile(join(dir, RELEASE_FILE), "utf8")));
  } catch {
    return undefined;
  }
}

/** Writes `bytes` to `dir/name` through a temporary file, so a reader sees the old or the new file whole. */
async function replaceFile(dir: string, name: string, bytes: Uint8Array | string, mode = 0o644) {
  const tmp = join(dir, `.${name}.${randomUUID()}`);
  try {
    await writeFile(tmp, bytes, { mode });
    await rename(tmp, join(dir, name));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export function createAgentPackageRoutes(o: AgentPackageRoutesOptions) {
  /** `GET`: the package or its hash (signed, any Ferry key), or the installer (unsigned). */
  async function download(c: Context, what: Served): Promise<Response> {
    try {
      if (what !== "installer") await o.authenticate(c, new Uint8Array());
      const file = join(o.dir, fileOf(what));
      // Open first: a publish renaming a new file in place does not change what this answer sends.
      const fh = await open(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") throw notPublished(what === "installer" ? "installer" : "package");
        throw err;
      });
      const { size } = await fh.stat();
      const release = await readRelease(o.dir);
      const headers: Record<string, string> = {
        "content-length": String(size),
        "content-type": what === "package" ? "application/gzip" : "text/plain; charset=utf-8",
        "cache-control": "no-store",
      };
      if (release && what !== "installer") {
        headers[AGENT_VERSION_HEADER] = release.version;
        headers.etag = `"${release.sha256}"`;
      }
      if (c.req.method === "HEAD") {
        await fh.close();
        return new Response(null, { status: 200, headers });
      }
      const body = Readable.toWeb(fh.createReadStream()) as ReadableStream<Uint8Array>;
      return new Response(body, { status: 200, headers });
    } catch (err) {
      return o.fail(c, err);
    }
  }

  /** `PUT`: an operator publishes the package or the installer; the body must hash to `x-ferry-sha256`. */
  async function publish(c: Context, what: "package" | "installer"): Promise<Response> {
    try {
      const declared = Number(c.req.header("content-length") ?? "0");
      if (declared > MAX_PUBLISH_BYTES)
        throw validationError(
          `The ${what} is ${declared} bytes; the limit is ${MAX_PUBLISH_BYTES}.`,
          "other",
        );
      const body = new Uint8Array(await c.req.arrayBuffer());
      if (body.length > MAX_PUBLISH_BYTES)
        throw validationError(
          `The ${what} is ${body.length} bytes; the limit is ${MAX_PUBLISH_BYTES}.`,
          "other",
        );
      const caller = await o.authenticate(c, body);
      if (caller.scope !== "operator")
        throw accessDenied(
          `Access key ${caller.accessKeyId} (scope ${caller.scope}) may not publish the agent ${what}: use an operator access key.`,
        );
      const expected = (c.req.header(SHA256_HEADER) ?? "").toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(expected))
        throw validationError(
          `${SHA256_HEADER} must carry the SHA-256 (64 hex digits) of the ${what}.`,
          "fieldValidationFailed",
          [{ name: SHA256_HEADER, message: "required, 64 hex digits" }],
        );
      const sha256 = createHash("sha256").update(body).digest("hex");
      if (sha256 !== expected)
        throw validationError(
          `The ${what} received hashes to ${sha256}, not ${expected} as ${SHA256_HEADER} says: it was damaged on the way. Publish again.`,
          "other",
        );
      await mkdir(o.dir, { recursive: true, mode: 0o755 });
      const file = fileOf(what);
      await replaceFile(o.dir, file, body, what === "installer" ? 0o755 : 0o644);
      const published: AgentPackagePublished = {
        file,
        sha256,
        bytes: body.length,
        version: c.req.header(AGENT_VERSION_HEADER) ?? "unknown",
        publishedAt: isoDateTime(Date.now()),
      };
      if (what === "package") {
        // The hash after the package: a download between the two renames fails the installer's
        // check (exit 4, run it again) instead of installing a package its hash did not vouch for.
        await replaceFile(o.dir, `${PACKAGE_FILE}.sha256`, `${sha256}  ${PACKAGE_FILE}\n`);
        await replaceFile(o.dir, RELEASE_FILE, `${JSON.stringify(published, null, 2)}\n`);
      }
      o.logger.info("agent package published", {
        accessKeyId: caller.accessKeyId,
        path: AGENT_PACKAGE_PATH,
        ...published,
      });
      return c.json(published, 200);
    } catch (err) {
      return o.fail(c, err);
    }
  }

  return { download, publish };
}
