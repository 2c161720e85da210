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
      "build the package and upload it, its .sha256 and the installer to latest/linux/ and <version>/linux/",
    )
    .requiredOption(
      "--s3-endpoint <host>",
      "S3-compatible endpoint host[:port] (e.g. an interface endpoint's DNS name)",
    )
    .option(
      "--region <region>",
      "region of the bucket",
      ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION ?? "us-east-1",
    )
    .option("--bucket <name>", "bucket (default: ferry-agent-<region>)")
    .option(
      "--path-style",
      "address the bucket as https://<endpoint>/<bucket>/… instead of https://<bucket>.<endpoint>/…",
    )
    .option("--aws-access-key-id <id>", "access key for the bucket (default: the AWS SDK's credential chain)")
    .option("--aws-secret-access-key <secret>", "its secret")
    .option("--aws-session-token <token>", "session token")
    .option("--ca-file <pem>", "CA to trust for the endpoint (a private S3-compatible store)")
    .option("--resolve <NAME=IP>", "static name resolution, repeatable", collect, [])
    .option("--package-dir <dir>", "publish the package already built there instead of building one")
    .option("--no-runtime", "when building: leave out the Node runtime")
    .option("--json", "print the published objects as JSON")
    .action(async (opts: Record<string, unknown>) => {
      const { buildAgentPackage, PACKAGE_NAME } = await import("../release/build.ts");
      const { publishAgentPackage } = await import("../release/publish.ts");
      const region = String(opts.region);
      const bucket = opts.bucket ? String(opts.bucket) : `ferry-agent-${region}`;
      if ((opts.awsAccessKeyId === undefined) !== (opts.awsSecretAccessKey === undefined))
        throw new FerryError(
          "USAGE",
          "give both --aws-access-key-id and --aws-secret-access-key, or neither",
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
        caPem: opts.caFile ? await readFile(String(opts.caFile), "utf8") : undefined,
        resolve: opts.resolve as string[],
        files: [pkg, `${pkg}.sha256`, INSTALLER],
        version,
      });
      if (opts.json) writeJson(ctx.stdout, { bucket, version, objects: published });
      else for (const p of published) writeLine(ctx.stdout, `${p.url}  ${formatBytes(p.bytes)}`);
    });
}
