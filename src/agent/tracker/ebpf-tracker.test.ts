/**
 * The eBPF tracker against real loop devices: a mounted ext4 under a write
 * workload, discards, a killed tracer, unclean and clean stops, writes while
 * stopped, partitions. Needs root, bpftrace and tracefs; skips otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { open, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type Scratch,
  attachLoop,
  createImage,
  createScratch,
  haveRoot,
  mkfs,
  mount,
  sh,
} from "../../../test/support/loop.ts";
import { HASH_BYTES } from "../../wire/index.ts";
import { hashDisk } from "../hash-disk.ts";
import { findBpftrace } from "./bpftrace.ts";
import { EbpfTracker } from "./ebpf-tracker.ts";
import type { DirtyExtent } from "./types.ts";

const MiB = 1024 * 1024;
const BS = 64 * 1024;

const skip = !haveRoot()
  ? "needs root (loop devices, eBPF)"
  : !(await findBpftrace())
    ? "needs bpftrace (apt-get install bpftrace)"
    : false;

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function covered(extents: DirtyExtent[], offset: number, length: number): boolean {
  return extents.some((x) => x.offset <= offset && x.offset + x.length >= offset + length);
}

/** Blocks whose hash differs between two hash lists of the same disk. */
function changedBlocks(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i * HASH_BYTES < a.length; i++) {
    if (
      !a
        .subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)
        .equals(b.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES))
    ) {
      out.push(i);
    }
  }
  return out;
}

async function writeDirect(dev: string, offset: number, data: Buffer): Promise<void> {
  // dd with oflag=direct: the write completes on the device before dd exits.
  const path = join("/tmp", `ferry-tracker-${process.pid}-${Math.random().toString(36).slice(2)}.bin`);
  await writeFile(path, data);
  try {
    await sh("dd", [
      `if=${path}`,
      `of=${dev}`,
      `bs=${data.length}`,
      "count=1",
      `seek=${offset}`,
      "oflag=direct,seek_bytes",
      "status=none",
    ]);
  } finally {
    await unlink(path);
  }
}

async function withTracker<T>(
  scratch: Scratch,
  dev: string,
  stateDir: string,
  fn: (t: EbpfTracker) => Promise<T>,
): Promise<T> {
  const tracker = new EbpfTracker({ devicePath: dev, stateDir, restartDelayMs: 200 });
  scratch.defer(() => tracker.stop());
  await tracker.start();
  return fn(tracker);
}

test("every block a workload on a mounted ext4 changes is in the drained extents", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const dev = await attachLoop(scratch, await createImage(scratch, "fs.img", 256 * MiB));
    await mkfs(dev, "ext4");
    const dir = await mount(scratch, dev);
    await sh("sync", []);
    await withTracker(scratch, dev, join(scratch.dir, "state"), async (tracker) => {
      assert.equal(tracker.gap?.code, "first-start");
      tracker.acknowledgeGap();
      const before = await hashDisk(dev);
      // Files of assorted sizes, each fsynced; some rewritten in the middle; some deleted and trimmed.
      for (let i = 0; i < 24; i++) {
        const fh = await open(join(dir, `f${i}`), "w");
        await fh.write(randomBytes(4096 + ((i * 37_123) % (3 * MiB))));
        await fh.sync();
        await fh.close();
      }
      for (let i = 0; i < 24; i += 3) {
        const fh = await open(join(dir, `f${i}`), "r+");
        await fh.write(randomBytes(5000), 0, 5000, 1234);
        await fh.sync();
        await fh.close();
      }
      for (let i = 1; i < 24; i += 4) await rm(join(dir, `f${i}`));
      await sh("sync", []);
      await sh("fstrim", [dir]);
      await tracker.settle();
      const after = await hashDisk(dev);
      const changed = changedBlocks(before.hashes, after.hashes);
      const extents = tracker.drain();
      assert.ok(changed.length > 100, `the workload changed ${changed.length} blocks`);
      const missed = changed.filter((b) => !covered(extents, b * BS, BS));
      assert.deepEqual(missed, [], `blocks changed but not reported: ${missed.slice(0, 10).join(", ")}`);
      const stats = tracker.stats();
      assert.ok(
        stats.writeBytes > 0 && stats.discardBytes > 0,
        `writes and discards seen: ${JSON.stringify(stats)}`,
      );
      assert.equal(tracker.gap, undefined, `no gap: ${JSON.stringify(tracker.gap)}`);
      assert.ok(tracker.writeRate() > 0);
      assert.deepEqual(tracker.drain(), [], "a drain empties the set");
    });
  } finally {
    await scratch.cleanup();
  }
});

test("discards and write-zeroes on a raw device are reported where they happened", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 64 * MiB));
    await withTracker(scratch, dev, join(scratch.dir, "state"), async (tracker) => {
      tracker.acknowledgeGap();
      await sh("blkdiscard", ["-o", String(8 * MiB), "-l", String(2 * MiB), dev]);
      await sh("blkdiscard", ["-z", "-o", String(20 * MiB), "-l", String(BS), dev]);
      await writeDirect(dev, 30 * MiB + BS + 4096, randomBytes(4096));
      await tracker.settle();
      assert.deepEqual(tracker.drain(), [
        { offset: 8 * MiB, length: 2 * MiB },
        { offset: 20 * MiB, length: BS },
        { offset: 30 * MiB + BS, length: BS },
      ]);
      assert.equal(tracker.stats().discardBytes, 2 * MiB);
    });
  } finally {
    await scratch.cleanup();
  }
});

test("a killed tracer sets a gap, is restarted, and tracking goes on", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 32 * MiB));
    await withTracker(scratch, dev, join(scratch.dir, "state"), async (tracker) => {
      tracker.acknowledgeGap();
      const first = tracker.tracerPid!;
      process.kill(first, "SIGKILL");
      await waitFor("the gap", () => tracker.gap !== undefined);
      assert.equal(tracker.gap!.code, "tracer-exited");
      assert.match(tracker.gap!.reason, /SIGKILL/);
      // Acknowledging while no tracer runs does not clear it.
      tracker.acknowledgeGap();
      if (tracker.tracerPid === undefined) assert.equal(tracker.gap?.code, "tracer-exited");
      await waitFor("the restart", () => tracker.tracerPid !== undefined && tracker.tracerPid !== first);
      tracker.acknowledgeGap();
      assert.equal(tracker.gap, undefined);
      assert.equal(tracker.stats().restarts, 1);
      tracker.drain();
      await writeDirect(dev, 5 * MiB, randomBytes(4096));
      await tracker.settle();
      assert.deepEqual(tracker.drain(), [{ offset: 5 * MiB, length: BS }]);
    });
  } finally {
    await scratch.cleanup();
  }
});

test(
  "clean stop and start: the dirty set survives and no gap; writes while stopped are a gap",
  { skip },
  async () => {
    const scratch = await createScratch();
    try {
      const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 32 * MiB));
      const stateDir = join(scratch.dir, "state");
      const one = new EbpfTracker({ devicePath: dev, stateDir });
      await one.start();
      one.acknowledgeGap();
      await writeDirect(dev, 3 * MiB, randomBytes(8192));
      await one.stop();

      const two = new EbpfTracker({ devicePath: dev, stateDir });
      await two.start();
      assert.equal(two.gap, undefined, `no gap after a clean stop: ${JSON.stringify(two.gap)}`);
      two.markDirty([{ offset: 10 * MiB + 1, length: 10 }]);
      await two.stop();

      const three = new EbpfTracker({ devicePath: dev, stateDir });
      await three.start();
      assert.equal(three.gap, undefined);
      assert.deepEqual(three.drain(), [
        { offset: 3 * MiB, length: BS },
        { offset: 10 * MiB, length: BS },
      ]);
      await three.stop();

      // Nobody tracks this write.
      await writeDirect(dev, 7 * MiB, randomBytes(4096));
      const four = new EbpfTracker({ devicePath: dev, stateDir });
      scratch.defer(() => four.stop());
      await four.start();
      assert.equal(four.gap?.code, "written-while-stopped");
      assert.match(four.gap!.reason, /8 written/);
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "an agent killed with SIGKILL leaves no clean-stop marker: the next start has a gap",
  { skip },
  async () => {
    const scratch = await createScratch();
    try {
      const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 32 * MiB));
      const stateDir = join(scratch.dir, "state");
      const clean = new EbpfTracker({ devicePath: dev, stateDir });
      await clean.start();
      await clean.stop();

      const url = pathToFileURL(join(import.meta.dirname, "ebpf-tracker.ts")).href;
      const code = `const { EbpfTracker } = await import(${JSON.stringify(url)});
      const t = new EbpfTracker({ devicePath: ${JSON.stringify(dev)}, stateDir: ${JSON.stringify(stateDir)} });
      await t.start();
      console.log("started " + t.tracerPid);
      setInterval(() => {}, 1000);`;
      const child = spawn(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", code],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      scratch.defer(async () => child.kill("SIGKILL"));
      const tracerPid = await new Promise<number>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (c: Buffer) => {
          out += c.toString();
          const m = /started (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.on("exit", (c) => reject(new Error(`agent exited early with ${c}`)));
      });
      child.kill("SIGKILL");
      // The orphaned bpftrace would die at its next write to the closed pipe; do not wait for one.
      try {
        process.kill(tracerPid, "SIGKILL");
      } catch {
        // already gone
      }

      const next = new EbpfTracker({ devicePath: dev, stateDir });
      scratch.defer(() => next.stop());
      await next.start();
      assert.equal(next.gap?.code, "unclean-stop");
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "a partition is tracked at offsets of the partition, and writes elsewhere on the disk are not",
  { skip },
  async () => {
    const scratch = await createScratch();
    try {
      const image = await createImage(scratch, "parted.img", 64 * MiB);
      const disk = (await sh("losetup", ["--find", "--show", "-P", image])).trim();
      scratch.defer(() => sh("losetup", ["-d", disk]));
      // Partitions added with BLKPG (no partition table parser needed): 16 MiB at sector 2048, then 16 MiB more.
      await sh("addpart", [disk, "1", "2048", "32768"]);
      await sh("addpart", [disk, "2", "34816", "32768"]);
      const part1 = `${disk}p1`;
      await waitFor("the partition device", () => existsSync(part1));
      await withTracker(scratch, part1, join(scratch.dir, "state"), async (tracker) => {
        tracker.acknowledgeGap();
        assert.equal(tracker.deviceSize, 16 * MiB);
        await writeDirect(part1, 2 * MiB, randomBytes(4096));
        await writeDirect(`${disk}p2`, 2 * MiB, randomBytes(4096));
        // On the whole disk: inside partition 1 at its offset 5 MiB, and before it.
        await writeDirect(disk, 2048 * 512 + 5 * MiB, randomBytes(4096));
        await writeDirect(disk, 4096, randomBytes(4096));
        await tracker.settle();
        assert.deepEqual(tracker.drain(), [
          { offset: 2 * MiB, length: BS },
          { offset: 5 * MiB, length: BS },
        ]);
      });
    } finally {
      await scratch.cleanup();
    }
  },
);

test("events lost by the tracer's ring buffer set a gap", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 64 * MiB));
    const tracker = new EbpfTracker({
      devicePath: dev,
      stateDir: join(scratch.dir, "state"),
      ringBufferPages: 1,
    });
    scratch.defer(() => tracker.stop());
    await tracker.start();
    tracker.acknowledgeGap();
    // A stopped bpftrace reads nothing: a one-page ring buffer overflows, and it says so when it resumes.
    const pid = tracker.tracerPid!;
    process.kill(pid, "SIGSTOP");
    try {
      await sh("dd", ["if=/dev/zero", `of=${dev}`, "bs=4k", "count=2000", "oflag=direct", "status=none"]);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await waitFor("the lost-events gap", () => tracker.gap !== undefined);
    assert.equal(tracker.gap!.code, "lost-events");
    assert.ok(tracker.stats().lostEvents > 0);
  } finally {
    await scratch.cleanup();
  }
});
