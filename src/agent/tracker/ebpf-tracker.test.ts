/**
 * The eBPF tracker against real loop devices: a mounted ext4 under a write
 * workload, discards and write-zeroes, partitions, lost events. Needs root,
 * bpftrace and tracefs; skips otherwise. Restarts: ebpf-tracker-restarts.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { open, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
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
      assert.deepEqual(
        missed,
        [],
        `blocks changed but not reported: ${missed.slice(0, 10).join(", ")} (gap: ${JSON.stringify(tracker.gap)}; stats: ${JSON.stringify(tracker.stats())})`,
      );
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
