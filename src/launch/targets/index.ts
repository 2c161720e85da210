/** The launch targets Ferry ships with. A new target is one file in this folder and one line here. */
import type { LaunchTarget } from "./target.ts";
import { createImageTarget } from "./image.ts";
import { createQemuTarget } from "./qemu.ts";

export function defaultTargets(): LaunchTarget[] {
  return [createImageTarget(), createQemuTarget()];
}
