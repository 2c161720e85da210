/**
 * Loop devices, filesystems and mounts for tests that need a real block
 * device. Everything created is tracked and torn down by id, even when a
 * test fails. Requires root; `haveRoot()` lets a test skip with a reason.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export function haveRoot(): boolean {
  return process.getuid?.() === 0;
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface Scratch {
  dir: string;
  /** Runs `fn` at teardown, last registered first. */
  defer(fn: () => Promise<unknown>): void;
  cleanup(): Promise<void>;
}

export async function createScratch(prefix = "ferry-test-"): Promise<Scratch> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const undo: (() => Promise<unknown>)[] = [];
  return {
    dir,
    defer: (fn) => undo.push(fn),
    async cleanup() {
      const errors: unknown[] = [];
      for (const fn of undo.reverse()) {
        try {
          await fn();
        } catch (err) {
          errors.push(err);
        }
      }
      await rm(dir, { recursive: true, force: true });
      if (errors.length) throw new AggregateError(errors, "test cleanup failed");
    },
  };
}

/** A sparse image file of `bytes` bytes. */
export async function createImage(scratch: Scratch, name: string, bytes: number): Promise<string> {
  const path = join(scratch.dir, name);
  await writeFile(path, "");
  await run("truncate", ["-s", String(bytes), path]);
  return path;
}

/** Attaches `image` to a free loop device; detached at cleanup. */
export async function attachLoop(scratch: Scratch, image: string): Promise<string> {
  const dev = (await sh("losetup", ["--find", "--show", image])).trim();
  scratch.defer(() => sh("losetup", ["-d", dev]));
  return dev;
}

export async function mkfs(device: string, fs: "ext4" | "xfs" = "ext4"): Promise<void> {
  if (fs === "ext4") await sh("mkfs.ext4", ["-q", "-F", "-b", "4096", device]);
  else await sh("mkfs.xfs", ["-q", "-f", device]);
}

/** Mounts `device` on a fresh directory; unmounted at cleanup (lazily if busy). */
export async function mount(scratch: Scratch, device: string, name = "mnt"): Promise<string> {
  const dir = join(scratch.dir, name);
  await sh("mkdir", ["-p", dir]);
  await sh("mount", [device, dir]);
  scratch.defer(async () => {
    try {
      await sh("umount", [dir]);
    } catch {
      await sh("umount", ["-l", dir]);
    }
  });
  return dir;
}
