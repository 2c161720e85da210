/**
 * `ferry release publish --endpoint`: uploads the agent package and the
 * installer to a control plane (SigV4, operator key), which keeps them in its
 * package directory and serves them at `/ferry/agent/package` to installers
 * run without `--s3-endpoint`. Each upload carries its SHA-256, which the
 * control plane checks before keeping anything; the hash it then serves is
 * read back and compared, so a publish that returns has been verified end to
 * end.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { FerryError } from "../lib/errors.ts";
import { createSignedClient, type SignedClientCredentials } from "../lib/signed-client.ts";
import { parseResolve } from "../lib/static-resolve.ts";
import {
  AGENT_INSTALLER_PATH,
  AGENT_PACKAGE_PATH,
  AGENT_PACKAGE_SHA256_PATH,
  AGENT_VERSION_HEADER,
  AgentPackagePublished,
  SHA256_HEADER,
} from "../model/agent-api.ts";
import type { PublishedObject } from "./publish.ts";

export interface ControlPublishOptions {
  /** `https://host[:port]` of the control plane. */
  endpoint: string;
  region: string;
  /** An operator key of that control plane. */
  credentials: SignedClientCredentials;
  caPem?: string;
  caFingerprint?: string;
  resolve?: string[];
  packageFile: string;
  /** The package's `.sha256` as built: must agree with the package before anything is sent. */
  sha256File: string;
  installerFile: string;
  version: string;
  /** Per request; a 44 MiB package over a slow link needs more than the API default. @default 600000 */
  timeoutMs?: number;
}

function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export async function publishToControlPlane(o: ControlPublishOptions): Promise<PublishedObject[]> {
  const pkg = await readFile(o.packageFile);
  const sha256 = sha256Of(pkg);
  const built = (await readFile(o.sha256File, "utf8")).split(/\s/)[0]?.toLowerCase();
  if (built !== sha256) {
    throw new FerryError(
      "PACKAGE_HASH_MISMATCH",
      `${o.packageFile} hashes to ${sha256} but ${o.sha256File} says ${built}: the package directory is inconsistent; build it again (ferry release build)`,
    );
  }
  const installer = await readFile(o.installerFile);
  const client = createSignedClient({
    endpoint: o.endpoint,
    region: o.region,
    credentials: o.credentials,
    ...(o.caPem ? { caPem: o.caPem } : {}),
    ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    ...(o.resolve?.length ? { hosts: parseResolve(o.resolve) } : {}),
    timeoutMs: o.timeoutMs ?? 600_000,
    keyHint: "an operator key of the control plane",
  });
  const origin = new URL(o.endpoint).origin;
  const published: PublishedObject[] = [];
  try {
    for (const [path, bytes, type] of [
      [AGENT_PACKAGE_PATH, pkg, "application/gzip"],
      [AGENT_INSTALLER_PATH, installer, "text/plain"],
    ] as const) {
      const hash = path === AGENT_PACKAGE_PATH ? sha256 : sha256Of(installer);
      const answer = await client.request("PUT", path, bytes, {
        "content-type": type,
        [SHA256_HEADER]: hash,
        [AGENT_VERSION_HEADER]: o.version,
      });
      const kept = AgentPackagePublished.safeParse(JSON.parse(answer.body.toString("utf8")));
      if (!kept.success || kept.data.sha256 !== hash || kept.data.bytes !== bytes.length) {
        throw new FerryError(
          "PUBLISH_NOT_VERIFIED",
          `the control plane at ${origin} answered the upload of ${path} with ${answer.body.toString("utf8").slice(0, 200)}, not sha256 ${hash} (${bytes.length} bytes): publish again`,
        );
      }
      published.push({ key: path, bytes: bytes.length, url: `${origin}${path}` });
    }
    // What installers will be told: the served .sha256 must name the package just sent.
    const served = (await client.request("GET", AGENT_PACKAGE_SHA256_PATH)).body.toString("utf8");
    if (served.split(/\s/)[0] !== sha256) {
      throw new FerryError(
        "PUBLISH_NOT_VERIFIED",
        `the control plane at ${origin} serves ${AGENT_PACKAGE_SHA256_PATH} as '${served.trim().slice(0, 100)}', not ${sha256}: another publish ran at the same time? Publish again`,
      );
    }
    published.push({
      key: AGENT_PACKAGE_SHA256_PATH,
      bytes: Buffer.byteLength(served),
      url: `${origin}${AGENT_PACKAGE_SHA256_PATH}`,
    });
  } finally {
    client.close();
  }
  return published;
}
