/**
 * P2: rescan after 1% of the 64 KiB blocks changed. Compares the rescan's time
 * with reading and hashing the whole disk, and the bytes it sends with the
 * bytes that changed.
 *
 *   node bench/rescan.ts [--size 2G] [--dir /var/tmp/ferry-bench] [--json]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { hashDisk } from "../src/agent/hash-disk.ts";
import { parseSize } from "../src/lib/units.ts";
import { GiB, dropCaches, isRoot, ratio, timed, writeBenchImage } from "./support.ts";

const FERRY = join(import.meta.dirname, "..", "bin", "ferry");
const { values } = parseArgs({
  options: {
    size: { type: "string", default: "2G" },
    dir: { type: "string", default: "/var/tmp/ferry-bench" },
    json: { type: "boolean", default: false },
  },
});
const size = parseSize(values.size!);
const dir = join(values.dir!, "rescan");
const BLOCK = 64 * 1024;

async function replicator(staging: string): Promise<{ args: string[]; stop: () => Promise<void> }> {
  const child = spawn(
    FERRY,
    ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", staging],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("\n")) resolve(buf.slice(0, buf.indexOf("\n")));
    });
    child.on("exit", (c) => reject(new Error(`replicator exited ${c}`)));
  });
  const info = JSON.parse(line) as { port: number; fingerprint: string; token: string };
  return {
    args: [
      "--replicator",
      `127.0.0.1:${info.port}`,
      "--replicator-fingerprint",
      info.fingerprint,
      "--token",
      info.token,
    ],
    stop: () =>
      new Promise((r) => {
        child.once("exit", () => r());
        child.kill("SIGTERM");
      }),
  };
}

await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
const image = join(dir, "disk.img");
await writeBenchImage(image, size);
let source = image;
let loop: string | undefined;
if (isRoot()) {
  loop = (await timed("losetup", ["--find", "--show", "--direct-io=on", image])).stdout.trim();
  source = loop;
}
try {
  const rep = await replicator(join(dir, "staging"));
  try {
    const agent = (extra: string[] = []) =>
      timed(FERRY, [
        "agent",
        "replicate",
        "--json",
        "--disk",
        `${source}=rescan`,
        ...rep.args,
        "--source-server-id",
        "s-benchrescan000000",
        "--state-dir",
        join(dir, "agent"),
        ...extra,
      ]);
    await agent(["--resync"]);
    // Change 1% of the blocks, spread over the disk.
    const blocks = size / BLOCK;
    const changed = Math.floor(blocks / 100);
    const fh = await open(image, "r+");
    for (let i = 0; i < changed; i++) {
      const b = Math.floor((i * blocks) / changed);
      await fh.write(randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
    }
    await fh.sync();
    await fh.close();
    const changedBytes = changed * BLOCK;

    await dropCaches();
    const t0 = performance.now();
    await hashDisk(source);
    const hashSeconds = (performance.now() - t0) / 1000;

    await dropCaches();
    const run = await agent();
    const done = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
      disks: {
        mode: string;
        seconds: number;
        rescannedBytes: number;
        dataBytes: number;
        zeroBytes: number;
        wireBytes: number;
      }[];
    };
    const d = done.disks[0]!;
    const result = {
      bench: "rescan",
      sizeBytes: size,
      changedBytes,
      mode: d.mode,
      readAndHashSeconds: Number(hashSeconds.toFixed(2)),
      rescanSeconds: Number(d.seconds.toFixed(2)),
      timeRatio: Number(ratio(d.seconds, hashSeconds)),
      dataBytesSent: d.dataBytes,
      wireBytes: d.wireBytes,
      bytesRatio: Number(ratio(d.dataBytes + d.zeroBytes, changedBytes)),
      targetP2: "rescan ≤ 1.3 × read-and-hash; bytes sent ≤ 1.2 × bytes changed",
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `rescan of ${(size / GiB).toFixed(1)} GiB with ${(changedBytes / 2 ** 20).toFixed(0)} MiB changed (1% of 64 KiB blocks)`,
      );
      console.log(`  read and hash the disk   ${result.readAndHashSeconds} s`);
      console.log(
        `  ferry rescan             ${result.rescanSeconds} s   ${result.timeRatio}× read-and-hash`,
      );
      console.log(
        `  data sent                ${(d.dataBytes / 2 ** 20).toFixed(1)} MiB   ${result.bytesRatio}× changed (wire ${(d.wireBytes / 2 ** 20).toFixed(1)} MiB)`,
      );
      console.log(`  target P2: ${result.targetP2}`);
    }
  } finally {
    await rep.stop();
  }
} finally {
  if (loop) await timed("losetup", ["-d", loop]);
  await rm(dir, { recursive: true, force: true });
}
