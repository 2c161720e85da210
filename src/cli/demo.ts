/**
 * `ferry demo`: the main job end to end on embedded defaults, no root needed.
 * Builds a sample source disk (a real ext4 filesystem with files), starts a
 * replicator on loopback, replicates the disk, verifies the staging volume is
 * byte-identical and prints a summary. Everything it starts, it stops.
 */
import type { Command } from "commander";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, copyFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";
import { formatBytes, parseSize } from "../lib/units.ts";
import type { Replicator } from "../replicator/server.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { summarize } from "./agent.ts";
import { ProgressPrinter } from "./progress.ts";

const run = promisify(execFile);

/** Fills `dir` with a small server's worth of files: configs, text, logs, binaries. */
async function populate(dir: string, budget: number): Promise<void> {
  await mkdir(join(dir, "etc"), { recursive: true });
  await mkdir(join(dir, "var", "log"), { recursive: true });
  await mkdir(join(dir, "srv", "data"), { recursive: true });
  await mkdir(join(dir, "usr", "share", "doc"), { recursive: true });
  await writeFile(join(dir, "etc", "hostname"), "ferry-demo-source\n");
  await writeFile(join(dir, "etc", "fstab"), "/dev/sda1 / ext4 defaults 0 1\n");
  try {
    for (const f of await readdir("/usr/share/common-licenses")) {
      await copyFile(join("/usr/share/common-licenses", f), join(dir, "usr", "share", "doc", f)).catch(
        () => {},
      );
    }
  } catch {
    // not a Debian machine; the generated files are enough
  }
  const lines: string[] = [];
  for (let i = 0; i < 200_000; i++) {
    lines.push(
      `2026-11-25T01:${String(i % 60).padStart(2, "0")}:00Z app[${1000 + (i % 17)}]: request ${i} served in ${i % 97} ms`,
    );
  }
  const log = lines.join("\n");
  const logCopies = Math.max(1, Math.floor(budget / 4 / log.length));
  for (let i = 0; i < logCopies; i++) await writeFile(join(dir, "var", "log", `app.log.${i}`), log);
  const binaries = Math.max(1, Math.floor(budget / 4 / (4 * 1024 * 1024)));
  for (let i = 0; i < binaries; i++)
    await writeFile(join(dir, "srv", "data", `blob-${i}.bin`), randomBytes(4 * 1024 * 1024));
}

export interface DemoOptions {
  size: string;
  workDir?: string;
  keep?: boolean;
  json?: boolean;
  dataPath?: boolean;
}

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command("demo")
    .description(
      "the main job on embedded defaults: ferry up, install and register an agent, replicate a sample ext4 disk to CONTINUOUS, verify it identical",
    )
    .option("--size <size>", "size of the sample disk", "256M")
    .option(
      "--work-dir <dir>",
      "where to build the disk and the staging area (default: a new temporary directory)",
    )
    .option("--keep", "keep the work directory")
    .option("--data-path", "only the data path: agent → replicator over TLS, no control plane (quicker)")
    .option("--json", "print the summary as one JSON object")
    .action(async (opts: DemoOptions) => {
      if (opts.dataPath) await dataPathDemo(opts, ctx);
      else await (await import("./demo-flow.ts")).fullDemo(opts, ctx);
    });
}

/** Builds the sample source disk: a real ext4 filesystem with files (mke2fs -d, no root needed). */
export async function buildSampleDisk(work: string, size: number): Promise<string> {
  const rootfs = join(work, "rootfs");
  const disk = join(work, "source-disk.img");
  await populate(rootfs, Math.floor(size * 0.4));
  try {
    await run("mke2fs", [
      "-q",
      "-F",
      "-t",
      "ext4",
      "-b",
      "4096",
      "-L",
      "ferry-demo",
      "-d",
      rootfs,
      disk,
      `${Math.floor(size / 1024)}k`,
    ]);
  } catch (err) {
    throw new FerryError("DEMO_MKFS_FAILED", `mke2fs failed (install e2fsprogs): ${(err as Error).message}`);
  }
  await rm(rootfs, { recursive: true, force: true });
  return disk;
}

/** The data path alone: a replicator on loopback and the agent's initial sync, then verify. */
async function dataPathDemo(opts: DemoOptions, ctx: CliContext): Promise<void> {
  const { hashDisk } = await import("../agent/hash-disk.ts");
  const { replicateDisk } = await import("../agent/sync.ts");
  const { createSelfSigned } = await import("../lib/pki.ts");
  const { startReplicator, tokenAuthorizer } = await import("../replicator/server.ts");
  const { verifyVolume } = await import("../replicator/verify.ts");
  const size = parseSize(opts.size);
  if (size < 16 * 1024 * 1024) throw new FerryError("USAGE", "--size must be at least 16M");
  const work = opts.workDir ?? (await mkdtemp(join(tmpdir(), "ferry-demo-")));
  const say = (s: string) => {
    if (!opts.json) writeLine(ctx.stderr, s);
  };
  let replicator: Replicator | undefined;
  try {
    // 1. A real ext4 filesystem with files, built without root by mke2fs -d.
    say(`building a ${formatBytes(size)} ext4 source disk in ${work}`);
    const disk = await buildSampleDisk(work, size);

    // 2. A replicator on loopback with a fresh certificate and token.
    const tls = await createSelfSigned({ commonName: "ferry-demo-replicator", altNames: ["127.0.0.1"] });
    const token = randomBytes(16).toString("hex");
    const dataDir = join(work, "replicator");
    replicator = await startReplicator({
      dataDir,
      host: "127.0.0.1",
      port: 0,
      tls,
      authorize: tokenAuthorizer(token),
    });
    say(`replicator listening on 127.0.0.1:${replicator.port} (certificate ${tls.fingerprint})`);

    // 3. Replicate.
    const sourceServerId = "s-demo0000000000000";
    const bar = opts.json ? undefined : new ProgressPrinter(ctx.stderr, ctx.isTTY);
    const result = await replicateDisk({
      sourcePath: disk,
      sourceServerId,
      diskId: "disk0",
      endpoint: { host: "127.0.0.1", port: replicator.port, fingerprint: tls.fingerprint, token },
      stateDir: join(work, "agent"),
      signal: ctx.signal,
      onProgress: (p) => bar?.update({ label: "initial sync", done: p.readOffset, total: p.size }),
    });
    bar?.done();

    // 4. Verify: per-block hashes of the source against the staging volume, and its stored data.
    const report = await verifyVolume(dataDir, sourceServerId, "disk0", await hashDisk(disk));
    let fsckClean: boolean | null = null;
    try {
      const { exportHead } = await import("../replicator/verify.ts");
      const replicaImage = join(work, "replica.img");
      await exportHead(dataDir, sourceServerId, "disk0", replicaImage);
      await run("e2fsck", ["-f", "-n", replicaImage]);
      fsckClean = true;
    } catch (err) {
      fsckClean = (err as { code?: unknown }).code === "ENOENT" ? null : false;
    }
    const summary = {
      identical: report.ok,
      bytes: result.bytes,
      seconds: result.seconds,
      zeroBytes: result.zeroBytes,
      dataBytes: result.dataBytes,
      wireBytes: result.wireBytes,
      compressionRatio: result.compressedBytes > 0 ? result.compressedRawBytes / result.compressedBytes : 1,
      throughputBytesPerSecond: result.bytes / result.seconds,
      blocks: report.blocks,
      differentBlocks: report.differentBlocks,
      damagedBlocks: report.damagedBlocks,
      replicaFsckClean: fsckClean,
      sourceServerId,
      workDir: opts.keep ? work : null,
    };
    if (opts.json) writeJson(ctx.stdout, summary);
    else {
      writeLine(ctx.stdout, summarize(result));
      writeLine(
        ctx.stdout,
        `verify: ${report.blocks} blocks compared — ${report.ok ? "staging volume is byte-identical to the source" : `${report.differentBlocks} differ, ${report.damagedBlocks} damaged`}` +
          (fsckClean === null ? "" : `; e2fsck -n on the replica: ${fsckClean ? "clean" : "ERRORS"}`),
      );
      if (opts.keep) writeLine(ctx.stdout, `work directory kept: ${work}`);
    }
    if (!report.ok || fsckClean === false) ctx.exitCode = 1;
  } finally {
    await replicator?.close();
    if (!opts.keep && !opts.workDir) await rm(work, { recursive: true, force: true });
  }
}
