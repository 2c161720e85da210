/** `ferry server`: the control plane (MGN-compatible API) over HTTPS. */
import type { Command } from "commander";
import { Option } from "commander";
import type { CliContext } from "./context.ts";
import type { Launcher } from "../model/launch.ts";
import type { StagingReleaser } from "../replicator/volume-release.ts";
import { writeJson, writeLine } from "./context.ts";
import { createLogger } from "../lib/log.ts";
import { FerryError } from "../lib/errors.ts";
import { join } from "node:path";
import { defaultHome } from "./paths.ts";

/** `HOST:PORT`, `[v6]:PORT` or `PORT`. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new FerryError(
      "BAD_LISTEN",
      `--listen '${text}' is not HOST:PORT (for example 0.0.0.0:8443 or 127.0.0.1:0).`,
    );
  }
  return { host: m[1] ?? m[2] ?? "127.0.0.1", port };
}

function positiveSeconds(text: string, flag = "--agent-not-seen-after"): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new FerryError("BAD_SECONDS", `${flag} '${text}' must be a positive number of seconds.`);
  }
  return n;
}

/**
 * Test seam: FERRY_TEST_CLOCK_SKEW_SECONDS runs the control plane's clock
 * that many seconds off (SigV4 window, timestamps), so the lab can show a
 * skewed server (src/net/lab, `skewServerClock`). Unset in production.
 */
function clockSkew(env: NodeJS.ProcessEnv): { now?: () => number } {
  const skew = Number(env.FERRY_TEST_CLOCK_SKEW_SECONDS ?? 0);
  return Number.isFinite(skew) && skew !== 0 ? { now: () => Date.now() + skew * 1000 } : {};
}

export interface StoreFlags {
  dataDir: string;
  databaseUrl?: string;
  region: string;
}

/** Flags shared by the commands that open the control plane's state. */
export function addStoreOptions(cmd: Command, ctx: CliContext): Command {
  return cmd
    .addOption(
      new Option("--data-dir <dir>", "state, keys and certificates").default(
        ctx.env.FERRY_DATA_DIR ?? join(defaultHome(ctx.env), "server"),
      ),
    )
    .addOption(
      new Option(
        "--database-url <url>",
        "PostgreSQL URL (postgres://…) instead of SQLite in the data dir",
      ).env("FERRY_DATABASE_URL"),
    )
    .addOption(
      new Option("--region <region>", "region name clients sign for").default(
        ctx.env.FERRY_REGION ?? "us-east-1",
      ),
    );
}

export function registerServer(program: Command, ctx: CliContext): void {
  const cmd = program
    .command("server")
    .description(
      "Run the control plane: the MGN-compatible API over HTTPS (creates a CA and certificate on first start)",
    )
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8443")
    .option(
      "--cert-name <name...>",
      "DNS names and IPs for the generated server certificate (default: localhost, 127.0.0.1, hostname)",
    )
    .option("--tls-cert <file>", "use this server certificate (PEM) instead of generating one")
    .option("--tls-key <file>", "the key of --tls-cert")
    .option("--tls-ca <file>", "the CA that issued --tls-cert, published to clients")
    .option("--account-id <id>", "12-digit account id in ARNs", "000000000000")
    .option("--agent-not-seen-after <seconds>", "an agent silent this long shows AGENT_NOT_SEEN", "60")
    .option(
      "--replicator-not-seen-after <seconds>",
      "a replicator without heartbeats this long is not assigned (default 60; at least 3 heartbeats, 30 s)",
    )
    .option(
      "--staging-store <url>",
      "launch test and cutover instances from this staging store (a replicator's data directory, or s3://bucket/prefix); without it StartTest and StartCutover refuse",
    )
    .option("--s3-endpoint <url>", "S3-compatible endpoint for --staging-store s3://…")
    .option("--s3-path-style", "path-style S3 addressing (most S3-compatible servers)")
    .option("--launch-dir <dir>", "where launched instances are written (default: <data-dir>/launch)")
    .option(
      "--post-launch-scripts <dir>",
      "post-launch action scripts (default: <launch-dir>/post-launch-actions)",
    )
    .option("--json", "print one JSON line when ready");
  addStoreOptions(cmd, ctx).action(
    async (
      o: StoreFlags & {
        listen: string;
        certName?: string[];
        tlsCert?: string;
        tlsKey?: string;
        tlsCa?: string;
        accountId: string;
        agentNotSeenAfter: string;
        replicatorNotSeenAfter?: string;
        stagingStore?: string;
        s3Endpoint?: string;
        s3PathStyle?: boolean;
        launchDir?: string;
        postLaunchScripts?: string;
        json?: boolean;
      },
    ) => {
      const { host, port } = parseListen(o.listen);
      const tlsGiven = [o.tlsCert, o.tlsKey, o.tlsCa].filter(Boolean).length;
      if (tlsGiven !== 0 && tlsGiven !== 3)
        throw new FerryError(
          "BAD_TLS_FLAGS",
          "Give all of --tls-cert, --tls-key and --tls-ca, or none to let Ferry generate them.",
        );
      const logger = createLogger({ stream: ctx.stderr, fields: { component: "control" } });
      let launcher: Launcher | undefined;
      let staging: { releaser: StagingReleaser; close(): Promise<void> } | undefined;
      if (o.stagingStore) {
        const { openCatalog, volumeLeased } = await import("../replicator/snapshots.ts");
        const { openStore } = await import("../replicator/store/index.ts");
        const { createStagingReleaser } = await import("../replicator/volume-release.ts");
        const { createLauncher } = await import("../launch/index.ts");
        const s3 = {
          ...(o.s3Endpoint ? { endpoint: o.s3Endpoint } : {}),
          ...(o.s3PathStyle ? { forcePathStyle: true } : {}),
        };
        // Launches read the store read-only; releasing a server's volumes is the only write.
        const catalog = openCatalog(o.stagingStore, s3);
        const releaseStore = openStore(o.stagingStore, s3);
        const releaser = createStagingReleaser({
          store: releaseStore,
          reason: "FinalizeCutover or DisconnectFromService",
          inUse: (prefix) => volumeLeased(catalog.store, prefix),
          log: logger.child({ component: "staging-release" }),
        });
        staging = {
          releaser,
          async close() {
            await releaser.close();
            await releaseStore.close();
          },
        };
        const launchDir = o.launchDir ?? join(o.dataDir, "launch");
        launcher = createLauncher({
          dataDir: launchDir,
          catalog,
          ...(o.postLaunchScripts ? { postLaunchScriptsDir: o.postLaunchScripts } : {}),
          releaseStaging: async (id) => {
            await releaser.release(id);
          },
          reinstateStaging: (id) => releaser.reinstate(id),
          logger: logger.child({ component: "launch" }),
        });
      }
      const { startServer } = await import("../control/index.ts");
      const handle = await startServer({
        dataDir: o.dataDir,
        ...(launcher ? { launcher } : {}),
        ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
        region: o.region,
        accountId: o.accountId,
        agentNotSeenAfterSeconds: positiveSeconds(o.agentNotSeenAfter),
        ...(o.replicatorNotSeenAfter !== undefined
          ? {
              replicatorNotSeenAfterSeconds: positiveSeconds(
                o.replicatorNotSeenAfter,
                "--replicator-not-seen-after",
              ),
            }
          : {}),
        ...clockSkew(ctx.env),
        host,
        port,
        ...(o.certName ? { certNames: o.certName } : {}),
        ...(o.tlsCert && o.tlsKey && o.tlsCa
          ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, caFile: o.tlsCa } }
          : {}),
        logger,
      });
      // Releases a previous process left unfinished (a crash, or a writer that outlived the retries).
      void staging?.releaser
        .resumePending()
        .then((ids) => ids.length && logger.info("resuming staging releases", { sourceServerIDs: ids }))
        .catch((err: unknown) => logger.warn("cannot list pending staging releases", { error: String(err) }));
      const info = {
        endpoint: handle.url,
        region: o.region,
        caFile: handle.caFile,
        caFingerprint: handle.caFingerprint,
        certNames: handle.certNames,
        database: o.databaseUrl ? "postgresql" : "sqlite",
        stagingStore: o.stagingStore ?? null,
      };
      if (o.json) writeJson(ctx.stdout, info);
      else {
        writeLine(
          ctx.stdout,
          `Ferry control plane listening on ${handle.url} (region ${o.region}, ${info.database})`,
        );
        writeLine(ctx.stdout, `CA certificate: ${handle.caFile}`);
        writeLine(ctx.stdout, `CA fingerprint (SHA-256): ${handle.caFingerprint}`);
        writeLine(ctx.stdout, `Certificate names: ${handle.certNames.join(", ")}`);
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await staging?.releaser.close();
      await handle.close();
      await launcher?.close();
      await staging?.close();
    },
  );
}
