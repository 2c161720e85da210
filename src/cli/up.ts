/**
 * `ferry up`: the embedded default — the control plane and one local
 * replicator in one process. The first start creates the CA, the
 * certificates and an operator access key, kept in the data directory (the
 * key's secret in `credentials.json`, mode 0600, so scripts can read it with
 * `--json` on every start).
 */
import type { Command } from "commander";
import { join } from "node:path";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { parseHostPort } from "./options.ts";
import { defaultHome } from "./paths.ts";

export function registerUp(program: Command, ctx: CliContext): void {
  program
    .command("up")
    .description("run the control plane and a local replicator together (the embedded default)")
    .option(
      "--data-dir <dir>",
      "state, certificates, keys and staging volumes",
      join(defaultHome(ctx.env), "up"),
    )
    .option("--listen <host:port>", "control plane (HTTPS) address", "127.0.0.1:8443")
    .option("--replicator-listen <host:port>", "replicator (TLS, data plane) address", "127.0.0.1:1500")
    .option("--region <region>", "region name clients sign for", ctx.env.FERRY_REGION ?? "us-east-1")
    .option(
      "--database-url <url>",
      "PostgreSQL URL instead of SQLite in the data dir",
      ctx.env.FERRY_DATABASE_URL,
    )
    .option("--cert-name <name...>", "extra DNS names or IPs for the server and replicator certificates")
    .option(
      "--json",
      "print one JSON line (endpoint, region, caFile, accessKeyId, secretAccessKey, …) once ready",
    )
    .action(async (opts: Record<string, string | string[] | boolean | undefined>) => {
      const { createLogger } = await import("../lib/log.ts");
      const { startEmbedded } = await import("./embedded.ts");
      const up = await startEmbedded({
        dataDir: String(opts.dataDir),
        listen: parseHostPort(String(opts.listen), 8443),
        replicatorListen: parseHostPort(String(opts.replicatorListen), 1500),
        region: String(opts.region),
        ...(opts.databaseUrl ? { databaseUrl: String(opts.databaseUrl) } : {}),
        certNames: (opts.certName as string[] | undefined) ?? [],
        log: createLogger({ stream: ctx.stderr, level: opts.json ? "warn" : "info" }),
      });
      try {
        const info = {
          endpoint: up.endpoint,
          region: up.region,
          caFile: up.caFile,
          caFingerprint: up.caFingerprint,
          accessKeyId: up.accessKeyId,
          secretAccessKey: up.secretAccessKey,
          replicator: up.replicator,
          replicatorFingerprint: up.replicatorFingerprint,
          replicatorId: up.replicatorId,
          dataDir: String(opts.dataDir),
        };
        if (opts.json) writeJson(ctx.stdout, info);
        else {
          writeLine(ctx.stdout, `Ferry is up.`);
          writeLine(ctx.stdout, `  endpoint        ${info.endpoint}   (region ${info.region})`);
          writeLine(ctx.stdout, `  CA              ${info.caFile}`);
          writeLine(ctx.stdout, `  CA fingerprint  ${info.caFingerprint}`);
          writeLine(
            ctx.stdout,
            `  replicator      ${info.replicator}   ${info.replicatorId}, fingerprint ${info.replicatorFingerprint}`,
          );
          if (up.createdKey) {
            writeLine(ctx.stdout, `  operator key    ${info.accessKeyId}`);
            writeLine(
              ctx.stdout,
              `  secret          ${info.secretAccessKey}   (kept in ${up.credentialsFile}, mode 0600)`,
            );
          } else {
            writeLine(
              ctx.stdout,
              `  operator key    ${info.accessKeyId}   (secret in ${up.credentialsFile})`,
            );
          }
          writeLine(ctx.stdout, ``);
          writeLine(
            ctx.stdout,
            `  aws mgn describe-source-servers --endpoint-url ${info.endpoint} --ca-bundle ${info.caFile} --region ${info.region}`,
          );
        }
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          ctx.signal.addEventListener("abort", () => resolve());
        });
      } finally {
        await up.close();
      }
    });
}
