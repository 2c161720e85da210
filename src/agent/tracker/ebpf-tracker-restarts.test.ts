/**
 * The eBPF tracker across restarts: a killed tracer, clean and unclean stops,
 * writes while stopped. Needs root, bpftrace and tracefs; skips otherwise.
 * (Split from ebpf-tracker.test.ts to keep each file short.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type Scratch,
  attachLoop,
  createImage,
  createScratch,
  haveRoot,
  sh,
} from "../../../test/support/loop.ts";
import { findBpftrace } from "./bpftrace.ts";
import { EbpfTracker } from "./ebpf-tracker.ts";

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
      // The orphaned bpftrace dies at its next write to the closed pipe: within a second (its tick).
      const alive = () => {
        try {
          process.kill(tracerPid, 0);
          return true;
        } catch {
          return false;
        }
      };
      scratch.defer(async () => alive() && process.kill(tracerPid, "SIGKILL"));
      await waitFor("the orphaned tracer to exit", () => !alive(), 5000);

      const next = new EbpfTracker({ devicePath: dev, stateDir });
      scratch.defer(() => next.stop());
      await next.start();
      assert.equal(next.gap?.code, "unclean-stop");
    } finally {
      await scratch.cleanup();
    }
  },
);
