/** `ferry release build|publish`: the agent package the installer downloads. */
import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "../lib/errors.ts";
import { formatBytes } from "../lib/units.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
const INSTALLER = join(ROOT, "installer", "ferry-installer-init");

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerRelease(program: Command, ctx: CliContext): void {
  const release = program
    .command("release")
    .description("build the agent package and publish it where ferry-installer-init downloads it");

  release
    .command("build")
    .description(
      "build ferry-agent-linux-x64.tar.gz (Node runtime, Ferry, the agent's packages) and its .sha256",
    )
    .option("--out-dir <dir>", "where to write the package", join(ROOT, "dist"))
    .option("--no-runtime", "leave out the Node runtime (the source must then have node ≥ 24 on PATH)")
    .option("--json", "print the result as JSON")
    .action(async (opts: { outDir: string; runtime: boolean; json?: boolean }) => {
      const { buildAgentPackage } = await import("../release/build.ts");
      const r = await buildAgentPackage({
        root: ROOT,
        outDir: resolvePath(opts.outDir),
        withRuntime: opts.runtime,
      });
      if (opts.json) writeJson(ctx.stdout, r);
      else {
        writeLine(
          ctx.stdout,
          `${r.file}: ${formatBytes(r.bytes)} (${r.files} files, ${formatBytes(r.unpackedBytes)} unpacked)`,
        );
        writeLine(ctx.stdout, `sha256 ${r.sha256}`);
      }
    });

  release
    .command("publish")
    .description(
      "build the package and publish it with its .sha256 and the installer: to a bucket (latest/linux/ and <version>/linux/) or to a control plane",
    )
    .option(
      "--s3-endpoint <host>",
      "S3-compatible endpoint host[:port] (e.g. an interface endpoint's DNS name)",
    )
    .option(
      "--endpoint <url>",
      "or a control plane, https://host[:port]: it serves the package to installers run without --s3-endpoint",
    )
    .option(
      "--region <region>",
      "region of the bucket, or of the control plane",
      ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION ?? "us-east-1",
    )
    .option("--bucket <name>", "bucket (default: ferry-agent-<region>)")
    .option(
      "--path-style",
      "address the bucket as https://<endpoint>/<bucket>/… instead of https://<bucket>.<endpoint>/…",
    )
    .option(
      "--aws-access-key-id <id>",
      "access key for the bucket (default: the AWS SDK's credential chain), or an operator key of the control plane (default: $AWS_ACCESS_KEY_ID)",
    )
    .option("--aws-secret-access-key <secret>", "its secret (default: $AWS_SECRET_ACCESS_KEY)")
    .option("--aws-session-token <token>", "session token")
    .option(
      "--ca-file <pem>",
      "CA to trust for the endpoint (a private S3-compatible store, the control plane)",
    )
    .option(
      "--ca-fingerprint <sha256>",
      "with --endpoint: pin the control plane's CA by its fingerprint instead",
    )
    .option("--resolve <NAME=IP>", "static name resolution, repeatable", collect, [])
    .option("--package-dir <dir>", "publish the package already built there instead of building one")
    .option("--no-runtime", "when building: leave out the Node runtime")
    .option("--json", "print the published objects as JSON")
    .action(async (opts: Record<string, unknown>) => {
      const { buildAgentPackage, PACKAGE_NAME } = await import("../release/build.ts");
      const region = String(opts.region);
      const bucket = opts.bucket ? String(opts.bucket) : `ferry-agent-${region}`;
      if (!opts.s3Endpoint === !opts.endpoint)
        throw new FerryError(
          "USAGE",
          "give --s3-endpoint (publish to a bucket) or --endpoint (publish to a control plane), one of them",
        );
      if ((opts.awsAccessKeyId === undefined) !== (opts.awsSecretAccessKey === undefined))
        throw new FerryError(
          "USAGE",
          "give both --aws-access-key-id and --aws-secret-access-key, or neither",
        );
      if (opts.caFile && opts.caFingerprint)
        throw new FerryError("USAGE", "give --ca-file or --ca-fingerprint, not both");
      if (opts.caFingerprint && !opts.endpoint)
        throw new FerryError(
          "USAGE",
          "--ca-fingerprint is for --endpoint (a control plane); for a bucket use --ca-file",
        );
      let dir: string;
      if (opts.packageDir) dir = resolvePath(String(opts.packageDir));
      else {
        dir = join(ROOT, "dist");
        await buildAgentPackage({ root: ROOT, outDir: dir, withRuntime: opts.runtime !== false });
      }
      const pkg = join(dir, PACKAGE_NAME);
      const version = (JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string })
        .version;
      const caPem = opts.caFile ? await readFile(String(opts.caFile), "utf8") : undefined;
      if (opts.endpoint) {
        const { publishToControlPlane } = await import("../release/publish-control.ts");
        const accessKeyId = opts.awsAccessKeyId ? String(opts.awsAccessKeyId) : ctx.env.AWS_ACCESS_KEY_ID;
        const secretAccessKey = opts.awsSecretAccessKey
          ? String(opts.awsSecretAccessKey)
          : ctx.env.AWS_SECRET_ACCESS_KEY;
        if (!accessKeyId || !secretAccessKey)
          throw new FerryError(
            "USAGE",
            "publishing to a control plane needs an operator key: --aws-access-key-id and --aws-secret-access-key (or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY); ferry access-key create --scope operator makes one",
          );
        const endpoint = String(opts.endpoint).replace(/\/$/, "");
        const published = await publishToControlPlane({
          endpoint,
          region,
          credentials: { accessKeyId, secretAccessKey },
          ...(caPem ? { caPem } : {}),
          ...(opts.caFingerprint ? { caFingerprint: String(opts.caFingerprint) } : {}),
          resolve: opts.resolve as string[],
          packageFile: pkg,
          sha256File: `${pkg}.sha256`,
          installerFile: INSTALLER,
          version,
        });
        if (opts.json) writeJson(ctx.stdout, { endpoint, version, objects: published });
        else for (const p of published) writeLine(ctx.stdout, `${p.url}  ${formatBytes(p.bytes)}`);
        return;
      }
      const { publishAgentPackage } = await import("../release/publish.ts");
      const published = await publishAgentPackage({
        s3Endpoint: String(opts.s3Endpoint),
        bucket,
        region,
        pathStyle: Boolean(opts.pathStyle),
        credentials: opts.awsAccessKeyId
          ? {
              accessKeyId: String(opts.awsAccessKeyId),
              secretAccessKey: String(opts.awsSecretAccessKey),
              ...(opts.awsSessionToken ? { sessionToken: String(opts.awsSessionToken) } : {}),
            }
          : undefined,
        caPem,
        resolve: opts.resolve as string[],
        files: [pkg, `${pkg}.sha256`, INSTALLER],
        version,
      });
      if (opts.json) writeJson(ctx.stdout, { bucket, version, objects: published });
      else for (const p of published) writeLine(ctx.stdout, `${p.url}  ${formatBytes(p.bytes)}`);
    });
}
