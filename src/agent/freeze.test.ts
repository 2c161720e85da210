/**
 * The filesystem freeze of consistency points, on a mounted ext4 on a loop
 * device: writes block while frozen and resume at thaw; the watchdog thaws a
 * freeze nobody ends (a forced timeout) and one whose agent was killed with
 * SIGKILL. Needs root; skips otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
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
} from "../../test/support/loop.ts";
import { FerryError } from "../lib/errors.ts";
import { freezeFilesystem } from "./freeze.ts";

const skip = haveRoot() ? false : "needs root (loop device, mount, fsfreeze)";

/** Starts a write + fsync on the filesystem; resolves with the time it completed. */
function writeAndSync(path: string): Promise<number> {
  return (async () => {
    const fh = await open(path, "w");
    try {
      await fh.write(Buffer.alloc(4096, 7));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return performance.now();
  })();
}

describe("freezeFilesystem", { skip }, () => {
  let scratch: Scratch;
  let mnt: string;
  before(async () => {
    scratch = await createScratch("ferry-freeze-");
    const dev = await attachLoop(scratch, await createImage(scratch, "fs.img", 64 * 1024 * 1024));
    await mkfs(dev);
    mnt = await mount(scratch, dev);
    // Whatever a test leaves, the filesystem is thawed before it is unmounted.
    scratch.defer(() => sh("fsfreeze", ["-u", mnt]).catch(() => undefined));
  });
  after(() => scratch?.cleanup());

  test("writes wait while frozen and complete at thaw, which the agent did (not the watchdog)", async () => {
    const f = await freezeFilesystem(mnt, 5000);
    const t0 = performance.now();
    const write = writeAndSync(join(mnt, "a"));
    const early = await Promise.race([
      write.then(() => "done"),
      new Promise((r) => setTimeout(r, 400, "blocked")),
    ]);
    assert.equal(early, "blocked", "a write waits while the filesystem is frozen");
    const r = await f.thaw();
    const doneAt = await write;
    assert.equal(r.watchdogThawed, false);
    assert.ok(r.heldMs >= 400 && r.heldMs < 5000, `held ${r.heldMs} ms`);
    assert.ok(doneAt - t0 < 5000, "the write completed at thaw, before the watchdog's bound");
    assert.deepEqual(await f.thaw(), r, "a second thaw changes nothing");
  });

  test("forced timeout: a freeze the agent never ends is thawed by the watchdog at its bound", async () => {
    const bound = 1000;
    const f = await freezeFilesystem(mnt, bound);
    const t0 = performance.now();
    const doneAt = await writeAndSync(join(mnt, "b"));
    const waited = doneAt - t0;
    assert.ok(waited >= bound * 0.8, `the write waited for the freeze (${Math.round(waited)} ms)`);
    assert.ok(waited < bound + 2000, `the watchdog thawed within its bound (${Math.round(waited)} ms)`);
    const r = await f.thaw();
    assert.equal(r.watchdogThawed, true, "the agent's late thaw knows the watchdog came first");
    assert.ok(r.heldMs >= bound * 0.8 && r.heldMs < bound + 2000, `held ${r.heldMs} ms`);
  });

  test("an agent killed with SIGKILL while frozen: the watchdog still thaws", async () => {
    const bound = 1500;
    // A separate process stands for the agent: it freezes, says so, and is killed.
    const agent = spawn(
      process.execPath,
      [
        "--disable-warning=ExperimentalWarning",
        "--input-type=module",
        "-e",
        `import { freezeFilesystem } from ${JSON.stringify(join(import.meta.dirname, "freeze.ts"))};
         await freezeFilesystem(${JSON.stringify(mnt)}, ${bound});
         console.log("frozen");
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        agent.stdout.on("data", (d: Buffer) => d.toString().includes("frozen") && resolve());
        agent.once("exit", (c) => reject(new Error(`the stand-in agent exited ${c}`)));
      });
      const t0 = performance.now();
      agent.kill("SIGKILL");
      const doneAt = await writeAndSync(join(mnt, "c"));
      assert.ok(doneAt - t0 < bound + 2000, `thawed ${Math.round(doneAt - t0)} ms after the agent died`);
    } finally {
      if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
    }
  });

  test("a path that is not a mounted filesystem: FREEZE_FAILED with the path", async () => {
    await assert.rejects(
      freezeFilesystem(join(mnt, "no-such-dir"), 1000),
      (e: unknown) =>
        e instanceof FerryError && e.code === "FREEZE_FAILED" && e.message.includes("no-such-dir"),
    );
  });
});
