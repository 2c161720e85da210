/**
 * The eBPF tracker's defences, driven by a stand-in for bpftrace (a shell
 * script that attaches nothing and reports only what the test wants) on a real
 * loop device: unreadable output, a tracer that goes silent, and writes the
 * tracer never reports, which the check against the kernel's counters finds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Scratch,
  attachLoop,
  createImage,
  createScratch,
  haveRoot,
  sh,
} from "../../../test/support/loop.ts";
import { EbpfTracker } from "./ebpf-tracker.ts";

const MiB = 1024 * 1024;
const skip = haveRoot() ? false : "needs root (loop devices)";

/**
 * A fake bpftrace: banner, ready, then answers every probe read for `seconds`
 * (a probe line with the largest time satisfies any waiter), then prints
 * `last` if given, then stays silent.
 */
async function fakeTracer(
  scratch: Scratch,
  seconds: number,
  last = "",
  first: string[] = [],
): Promise<string> {
  const path = join(scratch.dir, `fake-bpftrace-${seconds}-${first.length}`);
  await writeFile(
    path,
    `#!/bin/sh
echo "Attaching 4 probes..."
echo ready
${first.map((l) => `echo '${l}'`).join("\n")}
end=$(( $(date +%s) + ${seconds} ))
while [ "$(date +%s)" -lt "$end" ]; do echo "probe 18446744073709551615 0 8"; sleep 0.01; done
${last ? `echo '${last}'` : ""}
exec sleep 120
`,
  );
  await chmod(path, 0o755);
  return path;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function started(
  scratch: Scratch,
  bpftracePath: string,
  blockSize?: number,
): Promise<{ tracker: EbpfTracker; dev: string }> {
  const dev = await attachLoop(scratch, await createImage(scratch, "raw.img", 16 * MiB));
  const tracker = new EbpfTracker({
    devicePath: dev,
    stateDir: join(scratch.dir, "state"),
    bpftracePath,
    ...(blockSize ? { blockSize } : {}),
  });
  scratch.defer(() => tracker.stop());
  await tracker.start();
  tracker.acknowledgeGap();
  return { tracker, dev };
}

/** Read through a function so the compiler does not narrow it between awaits. */
function gapOf(tracker: EbpfTracker): EbpfTracker["gap"] {
  return tracker.gap;
}

test("a line the parser cannot read sets a gap", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const { tracker } = await started(scratch, await fakeTracer(scratch, 2, "WS 12 oops"));
    await waitFor("the gap", () => tracker.gap !== undefined);
    assert.equal(tracker.gap!.code, "tracer-output");
    assert.match(tracker.gap!.reason, /WS 12 oops/);
  } finally {
    await scratch.cleanup();
  }
});

test(
  "writes the tracer does not report are found by the check against the kernel's counters",
  { skip },
  async () => {
    const scratch = await createScratch();
    try {
      const { tracker, dev } = await started(scratch, await fakeTracer(scratch, 60));
      await tracker.settle();
      assert.equal(gapOf(tracker), undefined, "nothing written, nothing missed");
      await sh("dd", ["if=/dev/zero", `of=${dev}`, "bs=4096", "count=3", "oflag=direct", "status=none"]);
      await tracker.settle();
      assert.equal(gapOf(tracker)?.code, "lost-events");
      assert.match(gapOf(tracker)!.reason, /24 written and 0 discarded sectors/);
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "completions the tracer does not report are placed on the requests it saw issued: marked dirty, no gap",
  { skip },
  async () => {
    const scratch = await createScratch();
    try {
      // The three 4 KiB writes below, reported as issued (at a time no check can settle) and never as completed.
      const issued = [40, 48, 56].map((sector) => `i 18446744073709551615 ${sector} 8`);
      const { tracker, dev } = await started(scratch, await fakeTracer(scratch, 60, "", issued), 4096);
      await tracker.settle();
      assert.deepEqual(tracker.drain(), [], "issued but not completed: nothing dirty yet");
      await sh("dd", [
        "if=/dev/zero",
        `of=${dev}`,
        "bs=4096",
        "seek=5",
        "count=3",
        "oflag=direct",
        "status=none",
      ]);
      await tracker.settle();
      assert.equal(gapOf(tracker), undefined, "the miss was placed");
      assert.deepEqual(tracker.drain(), [{ offset: 5 * 4096, length: 3 * 4096 }]);
      assert.equal(tracker.stats().placedMisses, 1);
      // The check's base moved by the placed miss: the next checks find nothing new.
      await tracker.settle();
      assert.equal(gapOf(tracker), undefined);
      assert.equal(tracker.stats().placedMisses, 1);
      // A further unreported write that no open request can account for is a gap.
      await sh("dd", [
        "if=/dev/zero",
        `of=${dev}`,
        "bs=4096",
        "seek=100",
        "count=4",
        "oflag=direct",
        "status=none",
      ]);
      await tracker.settle();
      assert.equal(gapOf(tracker)?.code, "lost-events");
      assert.match(gapOf(tracker)!.reason, /32 written and 0 discarded sectors/);
    } finally {
      await scratch.cleanup();
    }
  },
);

test("a tracer that goes silent sets a gap", { skip }, async () => {
  const scratch = await createScratch();
  try {
    const { tracker } = await started(scratch, await fakeTracer(scratch, 1));
    await waitFor("the gap", () => tracker.gap !== undefined, 15_000);
    assert.equal(tracker.gap!.code, "tracer-exited");
    assert.match(tracker.gap!.reason, /printed nothing|did not report a probe read/);
  } finally {
    await scratch.cleanup();
  }
});
