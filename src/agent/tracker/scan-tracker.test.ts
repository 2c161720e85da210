import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
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
import { ScanTracker } from "./scan-tracker.ts";

const MiB = 1024 * 1024;
const BS = 64 * 1024;

async function patch(path: string, offset: number, data: Buffer): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.write(data, 0, data.length, offset);
  } finally {
    await fh.close();
  }
}

test("the scan tracker finds exactly the blocks that changed against the baseline", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    const size = 8 * MiB + 4096; // a short last block
    const content = randomBytes(size);
    content.fill(0, 2 * MiB, 3 * MiB); // zero blocks are recorded with the zero marker
    await writeFile(path, content);
    const baseline = await hashDisk(path, { direct: "off" });
    const tracker = new ScanTracker({
      devicePath: path,
      stateDir: join(scratch.dir, "state"),
      baseline,
      intervalMs: 0,
    });
    await tracker.start();
    try {
      assert.equal(tracker.gap, undefined, "with a baseline, the first pass covers any downtime");
      await patch(path, 5 * BS + 100, randomBytes(10)); // one block
      // Bytes that surely differ (a random byte equals the old one once in 256 runs).
      const flipped = (at: number, n: number) =>
        Buffer.from(content.subarray(at, at + n).map((b) => b ^ 0xff));
      await patch(path, 9 * BS - 1, flipped(9 * BS - 1, 2)); // straddles blocks 8 and 9
      await patch(path, 2 * MiB, flipped(2 * MiB, 1)); // a zero block no longer zero
      await patch(path, 20 * BS, content.subarray(20 * BS, 21 * BS)); // rewritten with the same bytes: no change
      await patch(path, size - 1, Buffer.from([content[size - 1]! ^ 1])); // the short last block
      await tracker.settle();
      assert.ok(tracker.stats().scans >= 1);
      assert.deepEqual(tracker.drain(), [
        { offset: 5 * BS, length: BS },
        { offset: 8 * BS, length: 2 * BS },
        { offset: 2 * MiB, length: BS },
        { offset: 8 * MiB, length: 4096 },
      ]);
      // The new contents are the reference now: a second pass finds nothing.
      const again = await tracker.scanNow();
      assert.equal(again.changedBlocks, 0);
      assert.equal(again.bytesRead, size);
      assert.deepEqual(tracker.drain(), []);
    } finally {
      await tracker.stop();
    }
  } finally {
    await scratch.cleanup();
  }
});

test("without a baseline the first start is a gap, later changes are found, and the dirty set survives a clean stop", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    const disk = randomBytes(4 * MiB);
    await writeFile(path, disk);
    const stateDir = join(scratch.dir, "state");
    const one = new ScanTracker({ devicePath: path, stateDir, intervalMs: 0 });
    await one.start();
    assert.equal(one.gap?.code, "first-start");
    one.acknowledgeGap();
    await patch(path, 3 * BS, Buffer.from([disk[3 * BS]! ^ 0xff])); // surely a change
    await one.scanNow();
    one.markDirty([{ offset: 40 * BS + 5, length: 1 }]);
    await one.stop();

    const two = new ScanTracker({ devicePath: path, stateDir, intervalMs: 0 });
    await two.start();
    try {
      assert.equal(two.gap, undefined);
      assert.deepEqual(two.drain(), [
        { offset: 3 * BS, length: BS },
        { offset: 40 * BS, length: BS },
      ]);
    } finally {
      await two.stop();
    }
  } finally {
    await scratch.cleanup();
  }
});

test("periodic passes find changes on their own; a disk that grew past the baseline is dirty beyond it", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    await writeFile(path, randomBytes(2 * MiB));
    const baseline = await hashDisk(path, { direct: "off" });
    await writeFile(path, randomBytes(MiB), { flag: "a" }); // grows to 3 MiB
    const tracker = new ScanTracker({
      devicePath: path,
      stateDir: join(scratch.dir, "state"),
      baseline,
      intervalMs: 50,
    });
    await tracker.start();
    try {
      const until = Date.now() + 10_000;
      while (tracker.stats().scans < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(tracker.drain(), [{ offset: 2 * MiB, length: MiB }]);
      await patch(path, 7 * BS, randomBytes(3));
      const seen = tracker.stats().scans;
      while (tracker.stats().scans < seen + 2 && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(tracker.drain(), [{ offset: 7 * BS, length: BS }]);
    } finally {
      await tracker.stop();
    }
  } finally {
    await scratch.cleanup();
  }
});

test("a scan that cannot read the disk sets a gap", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    await writeFile(path, randomBytes(MiB));
    const tracker = new ScanTracker({
      devicePath: path,
      stateDir: join(scratch.dir, "state"),
      intervalMs: 0,
    });
    await tracker.start();
    tracker.acknowledgeGap();
    await rm(path);
    await assert.rejects(tracker.scanNow());
    assert.equal(tracker.gap?.code, "scan-failed");
    assert.match(tracker.gap!.reason, /disk\.img/);
    await tracker.stop();
  } finally {
    await scratch.cleanup();
  }
});

test(
  "on a block device under a mounted ext4 the scan reports exactly the changed blocks (O_DIRECT)",
  { skip: haveRoot() ? false : "needs root for loop devices and mount" },
  async () => {
    const scratch = await createScratch();
    try {
      const dev = await attachLoop(scratch, await createImage(scratch, "fs.img", 128 * MiB));
      await mkfs(dev, "ext4");
      const dir = await mount(scratch, dev);
      await sh("sync", []);
      const baseline = await hashDisk(dev);
      const tracker = new ScanTracker({
        devicePath: dev,
        stateDir: join(scratch.dir, "state"),
        baseline,
        intervalMs: 0,
      });
      await tracker.start();
      try {
        for (let i = 0; i < 8; i++) await writeFile(join(dir, `f${i}`), randomBytes(300_000 * (i + 1)));
        await sh("sync", []);
        await tracker.settle();
        const after = await hashDisk(dev);
        const expected: number[] = [];
        for (let b = 0; b * HASH_BYTES < after.hashes.length; b++) {
          const at = b * HASH_BYTES;
          if (
            !after.hashes.subarray(at, at + HASH_BYTES).equals(baseline.hashes.subarray(at, at + HASH_BYTES))
          ) {
            expected.push(b);
          }
        }
        const got: number[] = [];
        for (const x of tracker.drain())
          for (let o = x.offset; o < x.offset + x.length; o += BS) got.push(o / BS);
        assert.ok(expected.length > 30);
        assert.deepEqual(got, expected);
      } finally {
        await tracker.stop();
      }
    } finally {
      await scratch.cleanup();
    }
  },
);
