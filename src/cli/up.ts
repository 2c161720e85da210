/**
 * `ferry up`: the embedded default — the control plane and one local
 * replicator in one process. The first start creates the CA, the
 * certificates and an operator access key, kept in the data directory (the
 * key's secret in `credentials.json`, mode 0600, so scripts can read it with
 * `--json` on every start).
 */
import type { Command } from "commander";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { systemErrorCode } from "../lib/errors.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { parseHostPort } from "./options.ts";
import { defaultHome } from "./paths.ts";

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** The local replicator's own key (scope replicator). */
  replicator?: { accessKeyId: string; secretAccessKey: string };
}

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
      const { startServer } = await import("../control/index.ts");
      const { loadOrCreateIdentity } = await import("../replicator/identity.ts");
      const { startReplicator, certificateAuthorizer } = await import("../replicator/server.ts");
      const { joinControlPlane } = await import("../replicator/join.ts");
      const { createLogger } = await import("../lib/log.ts");
      const dataDir = String(opts.dataDir);
      const listen = parseHostPort(String(opts.listen), 8443);
      const repListen = parseHostPort(String(opts.replicatorListen), 1500);
      const names = (opts.certName as string[] | undefined) ?? [];
      const log = createLogger({ stream: ctx.stderr, level: opts.json ? "warn" : "info" });
      const server = await startServer({
        dataDir: join(dataDir, "server"),
        host: listen.host,
        port: listen.port,
        region: String(opts.region),
        ...(opts.databaseUrl ? { databaseUrl: String(opts.databaseUrl) } : {}),
        certNames: [...new Set(["localhost", "127.0.0.1", listen.host, ...names])],
        logger: log.child({ component: "server" }),
      });
      let replicator: Awaited<ReturnType<typeof startReplicator>> | undefined;
      let membership: Awaited<ReturnType<typeof joinControlPlane>> | undefined;
      try {
        const credFile = join(dataDir, "credentials.json");
        let creds: Credentials | undefined;
        let created = false;
        try {
          creds = JSON.parse(await readFile(credFile, "utf8")) as Credentials;
          // The key may have been deleted with `ferry access-key delete`: make a new one then.
          const keys = await server.controlPlane.accessKeys.list();
          if (!keys.some((k) => k.accessKeyId === creds!.accessKeyId)) creds = undefined;
        } catch (err) {
          if (systemErrorCode(err) !== "ENOENT") throw err;
        }
        if (!creds) {
          const k = await server.controlPlane.accessKeys.create("operator", "created by ferry up");
          creds = { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
          created = true;
        }
        const keys = await server.controlPlane.accessKeys.list();
        if (!creds.replicator || !keys.some((k) => k.accessKeyId === creds!.replicator!.accessKeyId)) {
          const k = await server.controlPlane.accessKeys.create(
            "replicator",
            "the local replicator of ferry up",
          );
          creds.replicator = { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
          created = true;
        }
        if (created) await writeFile(credFile, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });

        // The local provisioner: one replicator in this process, joined to the control plane
        // like any replicator host (so agents get its address, fingerprint and CA-bound trust).
        const repDir = join(dataDir, "replicator");
        const id = await loadOrCreateIdentity(repDir, { altNames: [repListen.host, ...names] });
        replicator = await startReplicator({
          dataDir: repDir,
          host: repListen.host,
          port: repListen.port,
          tls: id,
          authorize: certificateAuthorizer(),
          requireClientCertificates: true,
          log: log.child({ component: "replicator" }),
        });
        const { readFile: read } = await import("node:fs/promises");
        const advertised = repListen.host === "0.0.0.0" ? "127.0.0.1" : repListen.host;
        membership = await joinControlPlane({
          endpoint: server.url,
          region: String(opts.region),
          credentials: creds.replicator,
          caPem: await read(server.caFile, "utf8"),
          registration: {
            name: "local",
            privateAddress: `${advertised}:${replicator.port}`,
            certFingerprint: id.fingerprint,
            stagingAreaSubnetId: "",
          },
          log: log.child({ component: "replicator" }),
        });
        replicator.setClientCa(membership.clientCaPem);
        const info = {
          endpoint: server.url,
          region: String(opts.region),
          caFile: server.caFile,
          caFingerprint: server.caFingerprint,
          accessKeyId: creds.accessKeyId,
          secretAccessKey: creds.secretAccessKey,
          replicator: `${replicator.host}:${replicator.port}`,
          replicatorFingerprint: id.fingerprint,
          replicatorId: membership.replicatorId,
          dataDir,
        };
        if (opts.json) writeJson(ctx.stdout, info);
        else {
          writeLine(ctx.stdout, `Ferry is up.`);
          writeLine(ctx.stdout, `  endpoint        ${info.endpoint}   (region ${info.region})`);
          writeLine(ctx.stdout, `  CA              ${info.caFile}`);
          writeLine(ctx.stdout, `  CA fingerprint  ${info.caFingerprint}`);
          writeLine(
            ctx.stdout,
            `  replicator      ${info.replicator}   fingerprint ${info.replicatorFingerprint}`,
          );
          if (created) {
            writeLine(ctx.stdout, `  operator key    ${creds.accessKeyId}`);
            writeLine(
              ctx.stdout,
              `  secret          ${creds.secretAccessKey}   (kept in ${credFile}, mode 0600)`,
            );
          } else {
            writeLine(ctx.stdout, `  operator key    ${creds.accessKeyId}   (secret in ${credFile})`);
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
        membership?.stop();
        await replicator?.close();
        await server.close();
      }
    });
}
