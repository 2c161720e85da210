import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { attachLoop, createImage, createScratch, haveRoot } from "../../../test/support/loop.ts";
import { buildScript, findBpftrace, kernelDevT } from "./bpftrace.ts";
import { selectTracker } from "./select.ts";

const MiB = 1024 * 1024;
const root = haveRoot();
const bpftrace = await findBpftrace();

test("the script filters the kernel's dev_t and a partition's sector range", () => {
  assert.equal(kernelDevT(7, 3), (7 << 20) | 3);
  assert.equal(kernelDevT(259, 1), 259 * 2 ** 20 + 1);
  const whole = buildScript({ major: 7, minor: 3, probeSector: 0 });
  assert.match(whole, /args->dev == \(uint32\)7340035 /);
  assert.doesNotMatch(whole, /args->sector < /);
  const part = buildScript({
    major: 259,
    minor: 0,
    range: { startSector: 2048, endSector: 34816 },
    probeSector: 2048,
  });
  assert.match(part, /args->sector < \(uint64\)34816/);
  assert.match(part, /args->sector \+ args->nr_sector > \(uint64\)2048/);
});

test("--tracker scan gives the scan tracker and says so", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    await writeFile(path, Buffer.alloc(MiB));
    const { tracker, reason } = await selectTracker({
      devicePath: path,
      stateDir: join(scratch.dir, "s"),
      prefer: "scan",
    });
    assert.equal(tracker.kind, "scan");
    assert.match(reason, /scan tracker, as requested/);
  } finally {
    await scratch.cleanup();
  }
});

test("an image file falls back to scan with the reason; asking for eBPF on it is a clear error", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    await writeFile(path, Buffer.alloc(MiB));
    const { tracker, reason } = await selectTracker({ devicePath: path, stateDir: join(scratch.dir, "s") });
    assert.equal(tracker.kind, "scan");
    assert.match(reason, /eBPF tracker is unavailable \(missing .*a block device/);
    await assert.rejects(
      selectTracker({ devicePath: path, stateDir: join(scratch.dir, "s"), prefer: "ebpf" }),
      (e: unknown) =>
        e instanceof FerryError &&
        e.code === "TRACKER_EBPF_UNAVAILABLE" &&
        e.message.includes(path) &&
        e.message.includes("block device") &&
        e.message.includes("--tracker scan"),
    );
  } finally {
    await scratch.cleanup();
  }
});

test(
  "eBPF is chosen on a loop device when bpftrace runs and sees it; a missing bpftrace is named",
  { skip: !root ? "needs root" : !bpftrace ? "needs bpftrace" : false },
  async () => {
    const scratch = await createScratch();
    try {
      const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 16 * MiB));
      const { tracker, reason } = await selectTracker({ devicePath: dev, stateDir: join(scratch.dir, "s") });
      assert.equal(tracker.kind, "ebpf");
      assert.match(reason, /block:block_rq_complete/);
      assert.match(reason, /self-test/);
      await assert.rejects(
        selectTracker({
          devicePath: dev,
          stateDir: join(scratch.dir, "s"),
          prefer: "ebpf",
          ebpf: { bpftracePath: "/nonexistent/bpftrace" },
        }),
        (e: unknown) =>
          e instanceof FerryError && /bpftrace \(\/nonexistent\/bpftrace not found/.test(e.message),
      );
      const fallback = await selectTracker({
        devicePath: dev,
        stateDir: join(scratch.dir, "s"),
        ebpf: { bpftracePath: "/nonexistent/bpftrace" },
      });
      assert.equal(fallback.tracker.kind, "scan");
      assert.match(fallback.reason, /not found/);
    } finally {
      await scratch.cleanup();
    }
  },
);
