/**
 * A brief filesystem freeze for a consistency point, with a watchdog that
 * always thaws: the freeze is done by a small shell child that thaws by itself
 * after `maxMs` even if the agent dies meanwhile; the agent thaws earlier when
 * it is done.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";

const run = promisify(execFile);

export interface Freeze {
  thaw(): Promise<void>;
}

export async function freezeFilesystem(mountpoint: string, maxMs = 2000): Promise<Freeze> {
  const seconds = Math.max(1, Math.ceil(maxMs / 1000));
  // The child freezes, reports, then thaws after the bound no matter what.
  const child = spawn(
    "sh",
    [
      "-c",
      'fsfreeze -f "$1" && echo frozen && sleep "$2"; fsfreeze -u "$1" 2>/dev/null; true',
      "sh",
      mountpoint,
      String(seconds),
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  child.unref();
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", () =>
      reject(
        new FerryError("FREEZE_FAILED", `cannot freeze ${mountpoint}: ${err.trim() || "fsfreeze failed"}`),
      ),
    );
  });
  let thawed = false;
  return {
    async thaw() {
      if (thawed) return;
      thawed = true;
      await run("fsfreeze", ["-u", mountpoint]).catch(() => {});
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
}
