/**
 * P1: initial sync of a disk (50% zero, 25% text-like, 25% random) over TLS
 * on loopback, beside the disk's direct-read rate and rsync (daemon on
 * loopback) on the same disk.
 *
 *   node bench/initial-sync.ts [--size 4G] [--dir /var/tmp/ferry-bench] [--staging DIR] [--json]
 *
 * As root the disk is a loop device (read with O_DIRECT, caches dropped
 * between runs); otherwise an image file.
 */
import { spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseSize } from "../src/lib/units.ts";
import { GiB, dropCaches, isRoot, mbps, ratio, timed, timedWithUsage, writeBenchImage } from "./support.ts";

const ROOT = join(import.meta.dirname, "..");
const FERRY = join(ROOT, "bin", "ferry");

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "4G" },
    dir: { type: "string", default: "/var/tmp/ferry-bench" },
    staging: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const size = parseSize(values.size!);
const dir = values.dir!;
const staging = values.staging ?? join(dir, "staging");

async function startReplicator(): Promise<{
  port: number;
  fingerprint: string;
  token: string;
  stop: () => Promise<void>;
}> {
  const child = spawn(
    FERRY,
    ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", staging],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  const first = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) resolve(buf.slice(0, i));
    });
    child.on("exit", (c) => reject(new Error(`replicator exited ${c}`)));
  });
  const info = JSON.parse(first) as { port: number; fingerprint: string; token: string };
  return {
    ...info,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function rsyncDaemon(dest: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, "rsyncd.conf");
  await writeFile(
    conf,
    `port = ${port}\naddress = 127.0.0.1\nuse chroot = false\npid file = ${join(dir, "rsyncd.pid")}\n[bench]\npath = ${dest}\nread only = false\nuid = ${process.getuid?.() ?? 0}\ngid = ${process.getgid?.() ?? 0}\n`,
  );
  const child = spawn("rsync", ["--daemon", "--no-detach", `--config=${conf}`], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  await rm(staging, { recursive: true, force: true });
  const image = join(dir, "disk.img");
  const log = (s: string) => {
    if (!values.json) process.stderr.write(`${s}\n`);
  };
  log(`writing a ${(size / GiB).toFixed(1)} GiB benchmark disk at ${image}`);
  await writeBenchImage(image, size);
  let source = image;
  let loop: string | undefined;
  if (isRoot()) {
    loop = (await timed("losetup", ["--find", "--show", "--direct-io=on", image])).stdout.trim();
    source = loop;
  }
  try {
    // 1. Direct read of the same disk.
    await dropCaches();
    const dd = await timed("dd", [
      `if=${source}`,
      "of=/dev/null",
      "bs=1M",
      ...(loop ? ["iflag=direct"] : []),
    ]);
    const directRate = mbps(size, dd.seconds);
    log(`direct read: ${directRate.toFixed(0)} MB/s`);

    // 2. Ferry: replicator and agent in their own processes, TLS on loopback.
    const rep = await startReplicator();
    let ferry;
    try {
      await dropCaches();
      ferry = await timedWithUsage(FERRY, [
        "agent",
        "replicate",
        "--json",
        "--disk",
        `${source}=bench`,
        "--replicator",
        `127.0.0.1:${rep.port}`,
        "--replicator-fingerprint",
        rep.fingerprint,
        "--token",
        rep.token,
        "--source-server-id",
        "s-bench000000000000",
        "--state-dir",
        join(dir, "agent-state"),
        "--resync",
      ]);
    } finally {
      await rep.stop();
    }
    const done = JSON.parse(ferry.stdout.trim().split("\n").at(-1)!) as {
      disks: {
        seconds: number;
        wireBytes: number;
        zeroBytes: number;
        compressedRawBytes: number;
        compressedBytes: number;
      }[];
    };
    const d = done.disks[0]!;
    const ferryRate = mbps(size, d.seconds);
    log(
      `ferry: ${ferryRate.toFixed(0)} MB/s (${d.seconds.toFixed(2)} s sync, ${ferry.seconds.toFixed(2)} s with process start)`,
    );

    // 3. rsync to a daemon on loopback, same disk (as a file: rsync does not read devices).
    const dest = join(dir, "rsync-dest");
    await rm(dest, { recursive: true, force: true });
    await mkdir(dest, { recursive: true });
    const daemon = await rsyncDaemon(dest);
    let rs;
    try {
      await dropCaches();
      rs = await timed("rsync", [
        "--whole-file",
        "--inplace",
        image,
        `rsync://127.0.0.1:${daemon.port}/bench/`,
      ]);
    } finally {
      await daemon.stop();
    }
    const rsyncRate = mbps(size, rs.seconds);
    log(`rsync: ${rsyncRate.toFixed(0)} MB/s`);
    await rm(dest, { recursive: true, force: true });

    const result = {
      bench: "initial-sync",
      sizeBytes: size,
      source: loop ? "loop device (O_DIRECT)" : "image file",
      staging,
      directReadMBps: Math.round(directRate),
      ferryMBps: Math.round(ferryRate),
      ferrySyncSeconds: d.seconds,
      ferryAgentCpuSeconds: ferry.userSeconds + ferry.sysSeconds,
      ferryAgentMaxRssMiB: Math.round(ferry.maxRssKiB / 1024),
      ferryWireBytes: d.wireBytes,
      ferryZeroBytes: d.zeroBytes,
      compressionRatio: d.compressedBytes ? d.compressedRawBytes / d.compressedBytes : 1,
      rsyncMBps: Math.round(rsyncRate),
      ferryVsDirect: Number(ratio(ferryRate, directRate)),
      ferryVsRsync: Number(ratio(ferryRate, rsyncRate)),
      targetP1: "ferry ≥ 0.80 × direct read; ≥ 3 × rsync",
    };
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      console.log(`initial sync of ${(size / GiB).toFixed(1)} GiB (${result.source}), staging in ${staging}`);
      console.log(`  direct read   ${String(result.directReadMBps).padStart(6)} MB/s`);
      console.log(
        `  ferry (TLS)   ${String(result.ferryMBps).padStart(6)} MB/s   ${result.ferryVsDirect}× direct read`,
      );
      console.log(
        `  rsync daemon  ${String(result.rsyncMBps).padStart(6)} MB/s   ferry is ${result.ferryVsRsync}× rsync`,
      );
      console.log(
        `  agent: ${result.ferryAgentCpuSeconds.toFixed(1)} CPU s, peak RSS ${result.ferryAgentMaxRssMiB} MiB; wire ${(d.wireBytes / GiB).toFixed(2)} GiB; zstd ${result.compressionRatio.toFixed(2)}×`,
      );
      console.log(`  target P1: ${result.targetP1}`);
    }
  } finally {
    if (loop) await timed("losetup", ["-d", loop]);
    await rm(image, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

await main();
