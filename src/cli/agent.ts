/** `ferry agent replicate|hash-list`: the source side. */
import { type Command, InvalidArgumentError } from "commander";
import { writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { SyncResult } from "../agent/sync.ts";
import type { ChangeTracker } from "../agent/tracker/index.ts";
import { FerryError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { formatBytes, formatRate } from "../lib/units.ts";
import { registerAgentInstall } from "./agent-install.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { parseChoice, parseHostPort, parseMbps } from "./options.ts";
import { defaultHome } from "./paths.ts";
import { ProgressPrinter } from "./progress.ts";

/** `--disk PATH` or `--disk PATH=ID`; the id defaults to the device or file name. */
function parseDisk(spec: string): { path: string; diskId: string } {
  const eq = spec.lastIndexOf("=");
  const path = eq > 0 ? spec.slice(0, eq) : spec;
  const diskId = eq > 0 ? spec.slice(eq + 1) : basename(path).replace(/[^A-Za-z0-9._-]/g, "_");
  return { path, diskId };
}

export function summarize(r: SyncResult): string {
  const ratio = r.compressedBytes > 0 ? r.compressedRawBytes / r.compressedBytes : 1;
  return [
    `${r.diskId} (${r.sourcePath}): ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${formatRate(r.bytes / r.seconds)})`,
    `  zero blocks skipped: ${formatBytes(r.zeroBytes)}; data sent: ${formatBytes(r.dataBytes)} as ${formatBytes(r.wireBytes)} on the wire`,
    `  compression: ${formatBytes(r.compressedRawBytes)} → ${formatBytes(r.compressedBytes)} (${ratio.toFixed(2)}×)` +
      (r.resumedFrom > 0 ? `; resumed from ${formatBytes(r.resumedFrom)}` : "") +
      (r.reconnects > 0 ? `; ${r.reconnects} reconnects` : ""),
  ].join("\n");
}

/** A duration in milliseconds, 50 ms to one hour. */
function parseMs(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 50 || n > 3600000)
    throw new InvalidArgumentError(`must be 50 to 3600000 milliseconds, got "${text}"`);
  return n;
}

function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 1000000)
    throw new InvalidArgumentError(`must be a whole number from 0, got "${text}"`);
  return n;
}

export function registerAgent(program: Command, ctx: CliContext): void {
  const agent = program
    .command("agent")
    .description("the source side: reads disks and streams them to a replicator");

  agent
    .command("replicate")
    .description("copy disks to a replicator (initial sync), resuming where a previous run stopped")
    .requiredOption(
      "--disk <disk...>",
      "disk or image to replicate, as PATH or PATH=ID; several disks replicate in parallel, each on its own connection",
    )
    .requiredOption("--replicator <host:port>", "replicator address (TCP 1500 by default)")
    .requiredOption(
      "--replicator-fingerprint <sha256>",
      "the replicator's certificate fingerprint, as `ferry replicator run` prints it",
    )
    .requiredOption("--token <token>", "pairing token of the replicator")
    .option("--source-server-id <id>", "source server id (default: derived from /etc/machine-id and kept)")
    .option(
      "--state-dir <dir>",
      "where the agent keeps its resume state",
      join(defaultHome(ctx.env), "agent"),
    )
    .option("--bandwidth <mbps>", "bandwidth throttling in Mbps, 0 = unlimited", parseMbps, 0)
    .option(
      "--compression <mode>",
      "auto | zstd | none",
      parseChoice(["auto", "zstd", "none"] as const),
      "auto",
    )
    .option(
      "--workers <n>",
      "threads that hash and compress: auto (the cores but one, 1 to 4) or a number (0: none)",
      "auto",
    )
    .option("--resync", "start a new full sync instead of resuming")
    .option("--window <MiB>", "unacknowledged data allowed in flight, in MiB", "64")
    .option(
      "--block-size <bytes>",
      "hash and tracking granularity (a power of two, 4096 to 1048576; fixed per sync generation)",
      "65536",
    )
    .option("--continuous", "after the initial sync, keep replicating changes until stopped (SIGINT/SIGTERM)")
    .option(
      "--tracker <tier>",
      "change tracking for --continuous: auto | ebpf | scan",
      parseChoice(["auto", "ebpf", "scan"] as const),
      "auto",
    )
    .option("--scan-interval <seconds>", "pause between passes of the scan tracker", "60")
    .option("--consistency-interval <seconds>", "how often to mark a crash-consistent point", "10")
    .option(
      "--freeze <mountpoint...>",
      "freeze these filesystems briefly (fsfreeze, watchdog-bounded) at consistency points",
    )
    .option("--heartbeat-ms <ms>", "heartbeat interval (default: the replicator's)", parseMs)
    .option(
      "--idle-timeout-ms <ms>",
      "reconnect when the replicator is silent this long (default: 4 heartbeats)",
      parseMs,
    )
    .option("--connect-timeout-ms <ms>", "give up a connection attempt after this long", parseMs, 10000)
    .option(
      "--max-reconnects <n>",
      "reconnect attempts in a row without progress before giving up",
      parseCount,
      8,
    )
    .option("--json", "print progress events and the result as JSON lines")
    .action(async (opts: Record<string, unknown>) => {
      const { replicateDisk } = await import("../agent/sync.ts");
      const { Throttle } = await import("../agent/throttle.ts");
      const { loadOrCreateSourceServerId } = await import("../agent/identity.ts");
      const disks = (opts.disk as string[]).map(parseDisk);
      const ids = new Set(disks.map((d) => d.diskId));
      if (ids.size !== disks.length)
        throw new FerryError("USAGE", "two --disk options have the same id: name them with PATH=ID");
      const where = parseHostPort(String(opts.replicator), 1500);
      const stateDir = String(opts.stateDir);
      const sourceServerId = opts.sourceServerId
        ? String(opts.sourceServerId)
        : await loadOrCreateSourceServerId(stateDir);
      const json = Boolean(opts.json);
      const throttle = new Throttle(Number(opts.bandwidth));
      const log = createLogger({
        stream: ctx.stderr,
        level: json ? "warn" : "info",
        fields: { component: "agent" },
      });
      const bars = new Map<string, ProgressPrinter>();
      const continuous = Boolean(opts.continuous);
      const trackers = new Map<string, ChangeTracker>();
      if (continuous) {
        const { selectTracker } = await import("../agent/tracker/index.ts");
        for (const d of disks) {
          const { tracker, reason } = await selectTracker({
            devicePath: d.path,
            stateDir: join(stateDir, sourceServerId, `${d.diskId}.tracker`),
            prefer: opts.tracker as "auto",
            blockSize: Number(opts.blockSize),
            scanIntervalMs: Number(opts.scanInterval) * 1000,
            logger: log,
          });
          await tracker.start();
          trackers.set(d.diskId, tracker);
          if (json) writeJson(ctx.stdout, { event: "tracker", diskId: d.diskId, kind: tracker.kind, reason });
          else writeLine(ctx.stderr, `${d.diskId}: ${reason}`);
        }
      }
      const stopTrackers = async () => {
        for (const t of trackers.values()) await t.stop();
      };
      const lastStatus = new Map<string, number>();
      const results = await Promise.all(
        disks.map((d) =>
          replicateDisk({
            sourcePath: d.path,
            diskId: d.diskId,
            sourceServerId,
            endpoint: {
              ...where,
              fingerprint: String(opts.replicatorFingerprint),
              token: String(opts.token),
              connectTimeoutMs: opts.connectTimeoutMs as number,
            },
            maxReconnects: opts.maxReconnects as number,
            ...(opts.heartbeatMs ? { heartbeatIntervalMs: opts.heartbeatMs as number } : {}),
            ...(opts.idleTimeoutMs ? { idleTimeoutMs: opts.idleTimeoutMs as number } : {}),
            stateDir,
            throttle,
            compression: opts.compression as "auto",
            workers: opts.workers === "auto" ? "auto" : Number(opts.workers),
            resync: Boolean(opts.resync),
            windowBytes: Math.max(1, Number(opts.window)) * 1024 * 1024,
            hashBlockSize: Number(opts.blockSize),
            ...(continuous
              ? {
                  continuous: {
                    tracker: trackers.get(d.diskId)!,
                    consistencyIntervalMs: Number(opts.consistencyInterval) * 1000,
                    ...(opts.freeze ? { freeze: opts.freeze as string[] } : {}),
                    onStatus: (st) => {
                      const now = Date.now();
                      if (now - (lastStatus.get(d.diskId) ?? 0) < (json ? 1000 : 5000)) return;
                      lastStatus.set(d.diskId, now);
                      if (json) writeJson(ctx.stdout, { event: "status", ...st });
                      else {
                        writeLine(
                          ctx.stderr,
                          `${d.diskId}: ${st.dataReplicationState}  backlog ${formatBytes(st.backloggedBytes)}  lag ${(st.lagMs / 1000).toFixed(1)} s  writes ${formatRate(st.writeBytesPerSecond)}  sent ${formatRate(st.sendBytesPerSecond)}` +
                            (st.error ? `  ${st.error.error}: ${st.error.rawError}` : ""),
                        );
                      }
                    },
                  },
                }
              : {}),
            signal: ctx.signal,
            log,
            onProgress: (p) => {
              if (json) {
                writeJson(ctx.stdout, { event: "progress", ...p });
                return;
              }
              let bar = bars.get(d.diskId);
              if (!bar)
                bars.set(d.diskId, (bar = new ProgressPrinter(ctx.stderr, ctx.isTTY && disks.length === 1)));
              bar.update({
                label: d.diskId,
                done: p.readOffset,
                total: p.size,
                note: `durable ${formatBytes(p.ackedOffset)}`,
              });
            },
          }),
        ),
      ).catch(async (err: unknown) => {
        await stopTrackers();
        // A signal is how continuous replication ends: a clean stop, not an error.
        if (continuous && err instanceof FerryError && err.code === "ABORTED") return undefined;
        throw err;
      });
      if (!results) {
        writeLine(ctx.stderr, "stopped; changes not yet replicated are kept for the next start");
        return;
      }
      await stopTrackers();
      for (const bar of bars.values()) bar.done();
      if (json) writeJson(ctx.stdout, { event: "done", sourceServerId, disks: results });
      else {
        writeLine(ctx.stdout, `source server ${sourceServerId}: initial sync complete`);
        for (const r of results) writeLine(ctx.stdout, summarize(r));
      }
    });

  agent
    .command("hash-list")
    .description(
      "write the hash list of a disk (one BLAKE3 per block) for `ferry replicator verify --hash-list`",
    )
    .requiredOption("--disk <path>", "disk or image")
    .requiredOption("--out <file>", "where to write the hash list")
    .option("--block-size <bytes>", "hash block size", "65536")
    .action(async (opts: Record<string, string>) => {
      const { hashDisk } = await import("../agent/hash-disk.ts");
      const { encodeHashList } = await import("../wire/index.ts");
      const list = await hashDisk(opts.disk!, { hashBlockSize: Number(opts.blockSize) });
      await writeFile(opts.out!, encodeHashList(list));
      writeLine(
        ctx.stdout,
        `${opts.out}: ${list.hashes.length / 32} blocks of ${formatBytes(list.hashBlockSize)}`,
      );
    });

  registerAgentInstall(agent, ctx);
}
