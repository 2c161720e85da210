/** `ferry snapshot list|verify`: a source server's point-in-time snapshots in a staging store. */
import type { Command } from "commander";
import { join } from "node:path";
import { formatBytes } from "../lib/units.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { defaultHome } from "./paths.ts";

type Opts = Record<string, string | boolean | undefined>;

function storeOptions(cmd: Command, ctx: CliContext): Command {
  return cmd
    .requiredOption("--source-server-id <id>", "the source server (s-…)")
    .option("--disk-id <id>", "only this disk")
    .option(
      "--data-dir <dir>",
      "the replicator's data directory (the local store)",
      join(defaultHome(ctx.env), "replicator"),
    )
    .option("--store <url>", "the staging store instead: a directory or s3://bucket/prefix")
    .option("--s3-endpoint <url>", "S3-compatible endpoint for an s3:// store")
    .option("--s3-path-style", "path-style S3 addressing (most S3-compatible servers)")
    .option("--region <region>", "S3 region", ctx.env.AWS_REGION ?? "us-east-1")
    .option("--json", "print JSON");
}

async function catalogOf(opts: Opts) {
  const { openCatalog } = await import("../replicator/snapshots.ts");
  return openCatalog(String(opts.store ?? opts.dataDir), {
    ...(opts.s3Endpoint ? { endpoint: String(opts.s3Endpoint) } : {}),
    ...(opts.s3PathStyle ? { forcePathStyle: true } : {}),
    region: String(opts.region),
  });
}

export function registerSnapshot(program: Command, ctx: CliContext): void {
  const snapshot = program.command("snapshot").description("point-in-time snapshots of replicated disks");

  storeOptions(snapshot.command("list").description("a source server's snapshots, oldest first"), ctx).action(
    async (opts: Opts) => {
      const { exclusiveBytes } = await import("../replicator/snapshots-space.ts");
      const catalog = await catalogOf(opts);
      try {
        const server = String(opts.sourceServerId);
        const infos = (await catalog.list(server)).filter((i) => !opts.diskId || i.diskId === opts.diskId);
        const space = new Map<string, number>();
        for (const disk of new Set(infos.map((i) => i.diskId))) {
          for (const [id, n] of await exclusiveBytes(catalog.store, server, disk)) space.set(id, n);
        }
        const rows = infos.map((i) => ({ ...i, exclusiveBytes: space.get(i.snapshotId) ?? 0 }));
        if (opts.json) {
          writeJson(ctx.stdout, { sourceServerId: server, snapshots: rows });
          return;
        }
        if (rows.length === 0)
          writeLine(ctx.stdout, `no snapshots of ${server} in ${catalog.store.location}`);
        for (const r of rows) {
          writeLine(
            ctx.stdout,
            `${r.snapshotId}  ${r.diskId}  ${r.createdAt}  ${r.reason.padEnd(12)}  ${formatBytes(r.diskSize)} disk, ${formatBytes(r.exclusiveBytes)} exclusive`,
          );
        }
      } finally {
        await catalog.close();
      }
    },
  );

  storeOptions(
    snapshot
      .command("verify")
      .description(
        "re-hash every stored block of a snapshot (or all) against its recorded BLAKE3; exit 1 on damage",
      ),
    ctx,
  )
    .option("--snapshot-id <id>", "only this snapshot")
    .action(async (opts: Opts) => {
      const { verifySnapshot } = await import("../replicator/snapshots-space.ts");
      const { FerryError } = await import("../lib/errors.ts");
      const catalog = await catalogOf(opts);
      try {
        const server = String(opts.sourceServerId);
        const infos = (await catalog.list(server)).filter(
          (i) =>
            (!opts.diskId || i.diskId === opts.diskId) &&
            (!opts.snapshotId || i.snapshotId === opts.snapshotId),
        );
        if (infos.length === 0) {
          throw new FerryError(
            "SNAPSHOT_NOT_FOUND",
            `no snapshot${opts.snapshotId ? ` ${String(opts.snapshotId)}` : ""} of ${server} in ${catalog.store.location}: list them with ferry snapshot list`,
          );
        }
        const reports = [];
        for (const i of infos) reports.push(await verifySnapshot(catalog, server, i.diskId, i.snapshotId));
        const ok = reports.every((r) => r.ok);
        if (opts.json) writeJson(ctx.stdout, { ok, snapshots: reports });
        else {
          for (const r of reports) {
            writeLine(
              ctx.stdout,
              `${r.snapshotId}  ${r.diskId}: ${r.blocks} stored blocks ${r.ok ? "intact" : `— ${r.damagedBlocks} DAMAGED at offsets ${r.damagedOffsets.slice(0, 16).join(", ")}${r.damagedOffsets.length > 16 ? ", …" : ""}`}`,
            );
          }
        }
        if (!ok) ctx.exitCode = 1;
      } finally {
        await catalog.close();
      }
    });
}
