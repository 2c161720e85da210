/** `ferry replicator run|verify`: the data-plane server and its checks. */
import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FerryError } from "../lib/errors.ts";
import type { Membership } from "../replicator/join.ts";
import type { ControlPlaneAuthorization } from "../replicator/authorize.ts";
import { createLogger } from "../lib/log.ts";
import { formatBytes } from "../lib/units.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { parseHostPort } from "./options.ts";
import { defaultHome } from "./paths.ts";
import { ProgressPrinter } from "./progress.ts";

export function registerReplicator(program: Command, ctx: CliContext): void {
  const replicator = program
    .command("replicator")
    .description("the replication server: receives block streams on TCP 1500");

  replicator
    .command("run")
    .description("run a replicator until signalled (TLS 1.3 on TCP 1500)")
    .option(
      "--data-dir <dir>",
      "where staging volumes, the certificate and the token live",
      join(defaultHome(ctx.env), "replicator"),
    )
    .option("--listen <host:port>", "address to listen on", "0.0.0.0:1500")
    .option(
      "--store <url>",
      "keep staging volumes in s3://bucket/prefix (S3-compatible; credentials from the AWS environment) instead of the data dir",
    )
    .option("--s3-endpoint <url>", "S3-compatible endpoint for --store s3://…")
    .option("--s3-path-style", "path-style S3 addressing (most S3-compatible servers)")
    .option(
      "--pit-policy <file>",
      'point-in-time snapshot rules (JSON, DRS shape: [{"ruleID":1,"units":"MINUTE","interval":10,"retentionDuration":60,"enabled":true}]); default: 10 min kept 1 h, hourly kept 24 h, daily kept 7 days',
    )
    .option(
      "--token <token>",
      "pairing token agents must present (default: created once and kept in the data dir)",
    )
    .option("--cert <file>", "TLS certificate (PEM); default: a self-signed one created in the data dir")
    .option("--key <file>", "TLS private key (PEM) for --cert")
    .option("--cert-name <name...>", "extra DNS names or IPs for the created certificate")
    .option("--heartbeat-ms <ms>", "heartbeat interval", "5000")
    .option("--idle-timeout-ms <ms>", "close a connection silent for this long", "20000")
    .option(
      "--join <url>",
      "join this control plane (https://host:port): register, heartbeat, accept only agents it certified",
    )
    .option("--access-key-id <id>", "replicator-scoped access key for --join (or AWS_ACCESS_KEY_ID)")
    .option("--secret-access-key <secret>", "its secret (or AWS_SECRET_ACCESS_KEY)")
    .option("--region <region>", "the control plane's region", ctx.env.AWS_REGION ?? "us-east-1")
    .option("--ca-file <file>", "the control plane's CA (PEM)")
    .option("--ca-fingerprint <sha256>", "pin the control plane's CA by fingerprint instead of --ca-file")
    .option("--name <name>", "this replicator's name in the control plane (default: the host name)")
    .option(
      "--private-address <host:port>",
      "address agents use with dataPlaneRouting PRIVATE_IP (default: --listen)",
    )
    .option("--public-address <host:port>", "address agents use with dataPlaneRouting PUBLIC_IP")
    .option("--pool <subnet-id>", "serve only source servers with this stagingAreaSubnetId", "")
    .option("--json", "print one JSON line with the address, fingerprint and token once listening")
    .action(async (opts: Record<string, string | string[] | boolean | undefined>) => {
      const { loadOrCreateIdentity } = await import("../replicator/identity.ts");
      const { startReplicator, tokenAuthorizer } = await import("../replicator/server.ts");
      const listen = parseHostPort(String(opts.listen), 1500);
      if (Boolean(opts.cert) !== Boolean(opts.key))
        throw new FerryError("USAGE", "--cert and --key go together");
      const dataDir = String(opts.dataDir);
      const id = await loadOrCreateIdentity(dataDir, {
        altNames: [
          ...((opts.certName as string[] | undefined) ?? []),
          ...(listen.host === "0.0.0.0" ? [] : [listen.host]),
        ],
        ...(opts.token ? { token: String(opts.token) } : {}),
        ...(opts.cert ? { certFile: String(opts.cert), keyFile: String(opts.key) } : {}),
      });
      let store;
      if (opts.store) {
        const { openStore } = await import("../replicator/store/index.ts");
        store = openStore(String(opts.store), {
          ...(opts.s3Endpoint ? { endpoint: String(opts.s3Endpoint) } : {}),
          ...(opts.s3PathStyle ? { forcePathStyle: true } : {}),
          region: String(opts.region),
        });
      }
      // Joined: agents prove who they are with certificates from the control plane, and the control
      // plane's heartbeat answers say which servers may still replicate; else the pairing token.
      let authorization: ControlPlaneAuthorization | undefined;
      if (opts.join) {
        const { ControlPlaneAuthorization, guardStore } = await import("../replicator/authorize.ts");
        const { LocalDirectoryStore } = await import("../replicator/store/local-directory-store.ts");
        const auth = new ControlPlaneAuthorization({
          log: createLogger({ stream: ctx.stderr, fields: { component: "replicator" } }),
        });
        store = guardStore(store ?? new LocalDirectoryStore(dataDir), (id) => auth.writeRefusal(id));
        authorization = auth;
      }
      const rep = await startReplicator({
        dataDir,
        ...(store ? { store } : {}),
        host: listen.host,
        port: listen.port,
        tls: id,
        authorize: authorization ? authorization.authorizer() : tokenAuthorizer(id.token),
        requireClientCertificates: Boolean(opts.join),
        heartbeatIntervalMs: Number(opts.heartbeatMs),
        idleTimeoutMs: Number(opts.idleTimeoutMs),
        log: createLogger({ stream: ctx.stderr, fields: { component: "replicator" } }),
        ...(opts.pitPolicy
          ? {
              pitPolicy: await (
                await import("../replicator/snapshots-policy.ts")
              ).loadPitPolicy(String(opts.pitPolicy)),
            }
          : {}),
      });
      let membership: Membership | undefined;
      if (opts.join) {
        const { joinControlPlane } = await import("../replicator/join.ts");
        const { readFile } = await import("node:fs/promises");
        const { hostname } = await import("node:os");
        const accessKeyId = String(opts.accessKeyId ?? ctx.env.AWS_ACCESS_KEY_ID ?? "");
        const secretAccessKey = String(opts.secretAccessKey ?? ctx.env.AWS_SECRET_ACCESS_KEY ?? "");
        if (!accessKeyId || !secretAccessKey) {
          await rep.close();
          throw new FerryError(
            "USAGE",
            "--join needs a replicator access key: --access-key-id and --secret-access-key",
          );
        }
        const privateAddress = opts.privateAddress
          ? String(opts.privateAddress)
          : listen.host === "0.0.0.0" || listen.host === "::"
            ? undefined
            : `${listen.host}:${rep.port}`;
        if (!privateAddress) {
          await rep.close();
          throw new FerryError(
            "USAGE",
            "listening on every address: say which one agents use with --private-address HOST:PORT",
          );
        }
        try {
          membership = await joinControlPlane({
            endpoint: String(opts.join),
            region: String(opts.region),
            credentials: { accessKeyId, secretAccessKey },
            ...(opts.caFile ? { caPem: await readFile(String(opts.caFile), "utf8") } : {}),
            ...(opts.caFingerprint ? { caFingerprint: String(opts.caFingerprint) } : {}),
            registration: () => ({
              name: String(opts.name ?? hostname()).replace(/[^A-Za-z0-9._-]/g, "-"),
              privateAddress,
              ...(opts.publicAddress ? { publicAddress: String(opts.publicAddress) } : {}),
              certFingerprint: id.fingerprint,
              stagingAreaSubnetId: String(opts.pool ?? ""),
              lastSnapshots: rep.lastSnapshots(),
              ...(authorization?.digest() ? { authorizationDigest: authorization.digest() } : {}),
            }),
            onAnswer: (answer) => authorization?.apply(answer.authorization, rep),
            log: createLogger({ stream: ctx.stderr, fields: { component: "replicator" } }),
          });
          const joined = membership;
          authorization?.setRefresh(() => joined.refresh());
        } catch (err) {
          await rep.close();
          throw err;
        }
        rep.setClientCa(membership.clientCaPem);
      }
      if (opts.json) {
        writeJson(ctx.stdout, {
          ...(membership ? { replicatorId: membership.replicatorId } : {}),
          listen: `${rep.host}:${rep.port}`,
          host: rep.host,
          port: rep.port,
          fingerprint: id.fingerprint,
          token: id.token,
          dataDir,
        });
      } else {
        writeLine(ctx.stdout, `replicator listening on ${rep.host}:${rep.port}`);
        writeLine(
          ctx.stdout,
          `certificate fingerprint (give agents --replicator-fingerprint): ${id.fingerprint}`,
        );
        if (membership) writeLine(ctx.stdout, `joined ${String(opts.join)} as ${membership.replicatorId}`);
        else writeLine(ctx.stdout, `pairing token (give agents --token): ${id.token}`);
        writeLine(ctx.stdout, `data directory: ${dataDir}`);
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", () => resolve());
      });
      membership?.stop();
      await rep.close();
    });

  replicator
    .command("verify")
    .description(
      "check a staging volume: stored data against its recorded hashes, and against a source disk or hash list",
    )
    .requiredOption("--source-server-id <id>", "source server the volume belongs to")
    .requiredOption("--disk-id <id>", "disk id within the source server")
    .option("--data-dir <dir>", "replicator data directory", join(defaultHome(ctx.env), "replicator"))
    .option("--source <path>", "compare with this disk or image (read directly, never through a stale cache)")
    .option("--hash-list <file>", "compare with a hash list made by `ferry agent hash-list`")
    .option("--json", "print the report as JSON")
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      if (opts.source && opts.hashList)
        throw new FerryError("USAGE", "give --source or --hash-list, not both");
      const { hashDisk } = await import("../agent/hash-disk.ts");
      const { verifyVolume } = await import("../replicator/verify.ts");
      const { decodeHashList } = await import("../wire/index.ts");
      const dataDir = String(opts.dataDir);
      const serverId = String(opts.sourceServerId);
      const diskId = String(opts.diskId);
      let list;
      if (opts.hashList) {
        list = decodeHashList(await readFile(String(opts.hashList)));
      } else if (opts.source) {
        const meta = JSON.parse(
          await readFile(join(dataDir, "volumes", serverId, diskId, "meta.json"), "utf8").catch(() => "{}"),
        ) as { hashBlockSize?: number };
        const bar = opts.json ? undefined : new ProgressPrinter(ctx.stderr, ctx.isTTY);
        list = await hashDisk(String(opts.source), {
          ...(meta.hashBlockSize ? { hashBlockSize: meta.hashBlockSize } : {}),
          onProgress: (done, total) => bar?.update({ label: "hashing source", done, total }),
        });
        bar?.done();
      }
      const report = await verifyVolume(dataDir, serverId, diskId, list);
      if (opts.json) writeJson(ctx.stdout, report);
      else {
        writeLine(
          ctx.stdout,
          `volume ${serverId}/${diskId}: ${formatBytes(report.diskSize)}, ${report.blocks} blocks of ${formatBytes(report.hashBlockSize)}`,
        );
        writeLine(
          ctx.stdout,
          `  stored data intact: ${report.damagedBlocks === 0 ? "yes" : `NO — ${report.damagedBlocks} damaged blocks`}`,
        );
        if (report.differentBlocks !== null) {
          writeLine(
            ctx.stdout,
            `  identical to source: ${report.differentBlocks === 0 ? "yes" : `NO — ${report.differentBlocks} blocks differ`}`,
          );
        }
        if (report.firstBadOffsets.length)
          writeLine(ctx.stdout, `  first bad offsets: ${report.firstBadOffsets.join(", ")}`);
      }
      if (!report.ok) ctx.exitCode = 1;
    });
}
