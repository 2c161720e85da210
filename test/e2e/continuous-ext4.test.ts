/**
 * Continuous replication of a mounted ext4 on a loop device, tracked by the
 * eBPF tracker, to a real replicator, under a live write workload (fio random
 * direct writes, buffered sequential writes with fsync, files created and
 * deleted). It ends identical at a consistency point: the workload stops, the
 * filesystem is held still, a CONSISTENT barrier is acknowledged, and then the
 * device (read with O_DIRECT) and the replica are compared block for block,
 * with the replicator's per-block hash list against the device's; the replica
 * passes `e2fsck -n`. Also: consistency points with `freeze`, which always
 * thaw. Needs root, bpftrace and fio; skips otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ContinuousStatus } from "../../src/agent/continuous.ts";
import { openBlockSource } from "../../src/agent/disk/block-source.ts";
import { hashDisk } from "../../src/agent/hash-disk.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { EbpfTracker } from "../../src/agent/tracker/index.ts";
import { findBpftrace } from "../../src/agent/tracker/bpftrace.ts";
import { FerryError } from "../../src/lib/errors.ts";
import {
  attachLoop,
  createImage,
  createScratch,
  haveRoot,
  mount,
  type Scratch,
  sh,
} from "../support/loop.ts";
import {
  stagingHashes,
  stagingImage,
  startTestReplicator,
  type TestReplicator,
} from "../support/data-plane.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const SERVER = "s-contine4000000000";

const haveFio = await run("fio", ["--version"]).then(
  () => true,
  () => false,
);
const skip = !haveRoot()
  ? "needs root (loop device, mount, eBPF)"
  : !(await findBpftrace())
    ? "needs bpftrace (apt-get install bpftrace)"
    : !haveFio
      ? "needs fio (apt-get install fio)"
      : false;

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh ext4 (no lazy init: nothing writes in the background once it is quiet) on a loop device, mounted. */
async function ext4(scratch: Scratch, name: string): Promise<{ dev: string; mnt: string }> {
  const image = await createImage(scratch, `${name}.img`, SIZE);
  const dev = await attachLoop(scratch, image);
  await sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev]);
  const mnt = await mount(scratch, dev, `${name}-mnt`);
  return { dev, mnt };
}

/** The live workload: fio (random direct 4 KiB writes; sequential buffered writes with fsync) and file churn. */
function startWorkload(mnt: string, seconds: number): { done: Promise<void>; stop: () => Promise<void> } {
  const fio = spawn(
    "fio",
    [
      "--name=random",
      `--filename=${join(mnt, "random.dat")}`,
      "--size=48M",
      "--rw=randwrite",
      "--bs=4k",
      "--direct=1",
      "--ioengine=psync",
      "--rate=6m",
      "--time_based",
      `--runtime=${seconds}`,
      "--name=sequential",
      `--filename=${join(mnt, "seq.dat")}`,
      "--size=32M",
      "--rw=write",
      "--bs=64k",
      "--fsync=8",
      "--rate=4m",
      "--time_based",
      `--runtime=${seconds}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let fioErr = "";
  fio.stderr.on("data", (d: Buffer) => (fioErr += d.toString()));
  const fioDone = new Promise<void>((resolve, reject) =>
    fio.once("exit", (code, signal) =>
      code === 0 || signal === "SIGTERM"
        ? resolve()
        : reject(new Error(`fio ended ${code ?? signal}: ${fioErr}`)),
    ),
  );
  let stopping = false;
  const churn = (async () => {
    await mkdir(join(mnt, "files"), { recursive: true });
    const end = Date.now() + seconds * 1000;
    for (let i = 0; !stopping && Date.now() < end; i++) {
      const f = join(mnt, "files", `f${i % 40}`);
      const fh = await open(f, "w");
      await fh.write(randomBytes(4096 + ((i * 7919) % 200_000)));
      await fh.sync();
      await fh.close();
      if (i % 3 === 0) await rm(join(mnt, "files", `f${(i + 17) % 40}`), { force: true });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    done: Promise.all([fioDone, churn]).then(() => undefined),
    async stop() {
      stopping = true;
      if (fio.exitCode === null) fio.kill("SIGTERM");
      await Promise.allSettled([fioDone, churn]);
    },
  };
}

/** Compares the device (O_DIRECT: never a stale page) with the replica image, 4 KiB block by block. */
async function compareWithReplica(
  dev: string,
  replica: string,
): Promise<{ differing: number[]; sha: string }> {
  const source = await openBlockSource(dev, { direct: "on" });
  const fh = await open(replica, "r");
  const chunk = 4 * MiB;
  const [buf] = source.allocBuffers(1, chunk);
  const theirs = Buffer.alloc(chunk);
  const whole = createHash("sha256");
  const differing: number[] = [];
  try {
    for (let off = 0; off < source.size; off += chunk) {
      const n = await source.read(buf!, off, Math.min(chunk, source.size - off));
      const { bytesRead } = await fh.read(theirs, 0, n, off);
      assert.equal(bytesRead, n, `the replica is shorter than the device at ${off}`);
      whole.update(buf!.subarray(0, n));
      for (let at = 0; at < n; at += 4096) {
        if (!buf!.subarray(at, at + 4096).equals(theirs.subarray(at, at + 4096))) differing.push(off + at);
      }
    }
  } finally {
    await fh.close();
    await source.close();
  }
  return { differing, sha: whole.digest("hex") };
}

describe("continuous replication of a mounted ext4 with the eBPF tracker", { skip }, () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  const children: ChildProcess[] = [];
  before(async () => {
    scratch = await createScratch("ferry-cext4-");
    rep = await startTestReplicator(join(scratch.dir, "replicator"));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await rep?.replicator.close();
    await scratch?.cleanup();
  });

  test("under a live workload; identical at a consistency point; the replica passes e2fsck -n", async () => {
    const { dev, mnt } = await ext4(scratch, "live");
    const diskId = "live";
    const tracker = new EbpfTracker({ devicePath: dev, stateDir: join(scratch.dir, "live.tracker") });
    await tracker.start();
    const statuses: ContinuousStatus[] = [];
    const ac = new AbortController();
    // Thawed at the end whatever happens (a second thaw is harmless).
    scratch.defer(() => sh("fsfreeze", ["-u", mnt]).catch(() => undefined));
    const sync = replicateDisk({
      sourcePath: dev,
      sourceServerId: SERVER,
      diskId,
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent"),
      hashBlockSize: 4096,
      signal: ac.signal,
      continuous: {
        tracker,
        intervalMs: 100,
        consistencyIntervalMs: 1000,
        onStatus: (s) => statuses.push(s),
      },
    });
    sync.catch(() => {});
    const workload = startWorkload(mnt, 8);
    try {
      await until("continuous mode", () => statuses.length > 0);
      await workload.done;
      const during = statuses.filter((s) => s.writeBytesPerSecond > 1 * MiB);
      assert.ok(during.length > 0, "the tracker measured the workload's writes");
      assert.ok(
        during.some((s) => s.backloggedBytes > 0),
        "changes were replicated while the workload ran",
      );

      // Hold the filesystem still (its journal flushed and marked clean) and wait for a consistency point after that.
      await sh("sync", []);
      await sh("fsfreeze", ["-f", mnt]);
      const frozenAt = new Date().toISOString();
      await until(
        "a consistency point acknowledged after the workload stopped",
        () => {
          const last = statuses.at(-1)!;
          return (
            last.lastConsistentAt !== null && last.lastConsistentAt > frozenAt && last.backloggedBytes === 0
          );
        },
        60000,
      );
      assert.equal(statuses.at(-1)!.tracker, "ebpf");

      const replica = await stagingImage(rep.dataDir, SERVER, diskId);
      const cmp = await compareWithReplica(dev, replica);
      assert.deepEqual(cmp.differing.slice(0, 16), [], `${cmp.differing.length} 4 KiB blocks differ`);
      // The replicator's per-block hash list is the device's.
      const mine = await hashDisk(dev, { hashBlockSize: 4096, direct: "on" });
      const theirs = await stagingHashes(rep.dataDir, SERVER, diskId);
      assert.equal(theirs.length, mine.hashes.length);
      assert.ok(theirs.equals(mine.hashes), "per-block hash lists are identical");
      // The replica is a clean filesystem.
      const fsck = await run("e2fsck", ["-f", "-n", replica]).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      assert.equal(fsck.code, 0, `e2fsck -n on the replica:\n${fsck.out}`);
    } finally {
      await sh("fsfreeze", ["-u", mnt]).catch(() => undefined);
      await workload.stop();
      ac.abort();
      await sync.catch(() => undefined);
      await tracker.stop();
    }
    await assert.rejects(sync, (e: unknown) => e instanceof FerryError && e.code === "ABORTED");
  });

  test("freeze: consistency points freeze the filesystem briefly, mark it consistent, and always thaw", async () => {
    const { dev, mnt } = await ext4(scratch, "frz");
    const diskId = "frz";
    const tracker = new EbpfTracker({ devicePath: dev, stateDir: join(scratch.dir, "frz.tracker") });
    await tracker.start();
    const statuses: ContinuousStatus[] = [];
    const ac = new AbortController();
    scratch.defer(() => sh("fsfreeze", ["-u", mnt]).catch(() => undefined));
    const sync = replicateDisk({
      sourcePath: dev,
      sourceServerId: SERVER,
      diskId,
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent"),
      hashBlockSize: 4096,
      signal: ac.signal,
      continuous: {
        tracker,
        intervalMs: 100,
        consistencyIntervalMs: 500,
        freeze: [mnt],
        freezeMaxMs: 3000,
        onStatus: (s) => statuses.push(s),
      },
    });
    sync.catch(() => {});
    const workload = startWorkload(mnt, 6);
    try {
      await until("continuous mode", () => statuses.length > 0);
      await workload.done;
      await until(
        "a consistency point that froze the filesystem",
        () => statuses.some((s) => s.lastFreeze),
        30000,
      );
      await until("a consistent point after the workload", () => {
        const last = statuses.at(-1)!;
        return last.lastConsistentAt !== null && last.backloggedBytes === 0 && last.lastFreeze !== undefined;
      });
      const last = statuses.at(-1)!.lastFreeze!;
      assert.equal(last.watchdogThawed, false, "thawed by the agent, within its bound");
      assert.ok(last.heldMs < 3000, `held ${last.heldMs} ms`);
    } finally {
      await workload.stop();
      ac.abort();
      await sync.catch(() => undefined);
      await tracker.stop();
    }
    // Thawed: a write and fsync on the filesystem completes at once.
    const t0 = performance.now();
    await writeFile(join(mnt, "after"), "thawed");
    await sh("sync", ["-f", join(mnt, "after")]);
    assert.ok(performance.now() - t0 < 2000, "the filesystem is not frozen after replication stopped");
  });

  test("lost events: writes the tracer never reported, or a ring buffer that overflowed, make the loop rescan; the replica gets them", async () => {
    // A stand-in for bpftrace on a raw loop device: it attaches nothing, answers every probe read
    // (so the tracker trusts it) and reports no write; once a trigger file exists it prints one
    // "Lost N events" line, as bpftrace does when its ring buffer overflows.
    const trigger = join(scratch.dir, "lose-now");
    const fake = join(scratch.dir, "fake-bpftrace");
    await writeFile(
      fake,
      `#!/bin/sh
echo "Attaching 3 probes..."
echo ready
end=$(( $(date +%s) + 120 ))
said=""
while [ "$(date +%s)" -lt "$end" ]; do
  echo "probe 18446744073709551615 0 8"
  if [ -z "$said" ] && [ -e ${JSON.stringify(trigger)} ]; then echo "Lost 12 events"; said=1; fi
  sleep 0.01
done
`,
      { mode: 0o755 },
    );
    const dev = await attachLoop(scratch, await createImage(scratch, "lost.img", 32 * MiB));
    const tracker = new EbpfTracker({
      devicePath: dev,
      stateDir: join(scratch.dir, "lost.tracker"),
      bpftracePath: fake,
    });
    await tracker.start();
    const statuses: ContinuousStatus[] = [];
    const ac = new AbortController();
    const sync = replicateDisk({
      sourcePath: dev,
      sourceServerId: SERVER,
      diskId: "lost",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent"),
      signal: ac.signal,
      continuous: {
        tracker,
        intervalMs: 100,
        consistencyIntervalMs: 60_000,
        onStatus: (s) => statuses.push(s),
      },
    });
    sync.catch(() => {});
    const replicaHas = async (offset: number, data: Buffer) => {
      const fh = await open(await stagingImage(rep.dataDir, SERVER, "lost"), "r");
      try {
        const b = Buffer.alloc(data.length);
        await fh.read(b, 0, b.length, offset);
        return b.equals(data);
      } finally {
        await fh.close();
      }
    };
    const writeDirect = async (offset: number, data: Buffer) => {
      const src = join(scratch.dir, "block.bin");
      await writeFile(src, data);
      await sh("dd", [
        `if=${src}`,
        `of=${dev}`,
        `bs=${data.length}`,
        "count=1",
        `seek=${offset}`,
        "oflag=direct,seek_bytes",
        "status=none",
      ]);
    };
    try {
      await until("continuous mode", () => statuses.length > 0 && statuses.at(-1)!.backloggedBytes === 0);
      const rescannedBefore = statuses.at(-1)!.rescannedBytes;
      // 1. Writes the tracer never reports: the check against the kernel's counters finds them.
      const a = randomBytes(12 * 1024);
      await writeDirect(5 * MiB, a);
      await until(
        "the unreported write reached the replica through a rescan",
        () => replicaHas(5 * MiB, a),
        60000,
      );
      assert.ok(
        statuses.some((s) => s.dataReplicationState === "RESCAN"),
        "the loop said RESCAN",
      );
      const afterFirst = statuses.at(-1)!.rescannedBytes;
      assert.ok(
        afterFirst >= rescannedBefore + 32 * MiB,
        `the whole disk was compared (${afterFirst} bytes)`,
      );
      // 2. The ring buffer overflowed ("Lost N events"): a gap, a rescan, and the write arrives.
      await until("quiet", () => statuses.at(-1)!.dataReplicationState === "CONTINUOUS");
      const b = randomBytes(8 * 1024);
      await writeDirect(20 * MiB, b);
      await writeFile(trigger, "");
      await until(
        "the write reached the replica after the lost events",
        () => replicaHas(20 * MiB, b),
        60000,
      );
      assert.ok(tracker.stats().lostEvents >= 12, `lost events counted: ${tracker.stats().lostEvents}`);
      assert.ok(statuses.at(-1)!.rescannedBytes >= afterFirst + 32 * MiB, "a second full rescan");
    } finally {
      ac.abort();
      await sync.catch(() => undefined);
      await tracker.stop();
    }
  });
});
