/**
 * The `image` target: the launched disks are the instance — raw image files
 * (holes for zeros), or qcow2 when asked for and qemu-img is present. Nothing
 * runs, so the first boot is STOPPED.
 */
import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import type { LaunchTarget, TargetLaunch } from "./target.ts";
import { FerryError } from "../../lib/errors.ts";

const run = promisify(execFile);

export function createImageTarget(): LaunchTarget {
  return {
    name: "image",
    async launch(ctx): Promise<TargetLaunch> {
      const disks: TargetLaunch["disks"] = [];
      for (const d of ctx.disks) {
        if (ctx.settings.imageFormat !== "qcow2") {
          disks.push({ diskId: d.diskId, path: d.path, format: "raw", bytes: d.bytes });
          continue;
        }
        const out = d.path.replace(/\.raw$/, "") + ".qcow2";
        try {
          await run("qemu-img", ["convert", "-O", "qcow2", d.path, out], { signal: ctx.signal });
        } catch (err) {
          throw new FerryError(
            "QCOW2_FAILED",
            `Could not write disk ${d.diskId} as qcow2 (qemu-img convert): ${(err as Error).message}. Install qemu-utils or set imageFormat raw.`,
          );
        }
        await rm(d.path);
        disks.push({ diskId: d.diskId, path: out, format: "qcow2", bytes: d.bytes });
      }
      return { disks, firstBoot: "STOPPED" };
    },
    async terminate() {},
    async close() {},
  };
}
