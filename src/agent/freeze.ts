/**
 * A brief filesystem freeze for a consistency point, with a watchdog that
 * always thaws: the freeze is done by a small shell child that thaws by itself
 * after `maxMs` even if the agent dies or hangs meanwhile; the agent thaws
 * earlier when it is done.
 *
 * While frozen, every write to the filesystem blocks — the agent's own too:
 * its state directory must not be on a frozen filesystem, or it waits for the
 * watchdog.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";

const run = promisify(execFile);

export interface ThawResult {
  /** How long the filesystem stayed frozen (until the agent's thaw or the watchdog's). */
  heldMs: number;
  /** The watchdog thawed it before the agent did: writes may have resumed earlier than planned. */
  watchdogThawed: boolean;
}

export interface Freeze {
  readonly mountpoint: string;
  /** Thaws (idempotent); says how long it held and whether the watchdog had thawed it already. */
  thaw(): Promise<ThawResult>;
}

/** Freezes `mountpoint` (fsfreeze -f); the returned handle thaws it, and the watchdog does after `maxMs`. */
export async function freezeFilesystem(mountpoint: string, maxMs = 2000): Promise<Freeze> {
  const seconds = (Math.max(100, maxMs) / 1000).toFixed(3);
  // The child freezes, reports, then thaws after the bound no matter what, and says so.
  const child = spawn(
    "sh",
    [
      "-c",
      'fsfreeze -f "$1" || exit 1; echo frozen; sleep "$2"; fsfreeze -u "$1" 2>/dev/null; echo watchdog-thawed',
      "sh",
      mountpoint,
      seconds,
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  child.unref();
  let err = "";
  let out = "";
  let frozenAt = 0;
  let watchdogAt = 0;
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!frozenAt && out.includes("frozen\n")) {
        frozenAt = performance.now();
        resolve();
      }
      if (!watchdogAt && out.includes("watchdog-thawed")) watchdogAt = performance.now();
    });
    child.once("exit", () =>
      reject(
        new FerryError(
          "FREEZE_FAILED",
          `cannot freeze ${mountpoint}: ${err.trim() || "fsfreeze failed"} (is it a mounted filesystem that supports freezing? run as root)`,
          { details: { mountpoint } },
        ),
      ),
    );
  });
  // Streams stay open until the child ends; they must not keep the agent alive.
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  let result: ThawResult | undefined;
  return {
    mountpoint,
    async thaw() {
      if (result) return result;
      const now = performance.now();
      // fsfreeze -u fails (EINVAL) when the filesystem is no longer frozen: the watchdog came first.
      const weThawed = await run("fsfreeze", ["-u", mountpoint]).then(
        () => true,
        () => false,
      );
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      result = weThawed
        ? { heldMs: now - frozenAt, watchdogThawed: false }
        : { heldMs: (watchdogAt || now) - frozenAt, watchdogThawed: true };
      return result;
    },
  };
}
