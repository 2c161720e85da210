/** Launches: the launcher the control plane's jobs drive, and its targets. */
export { createLauncher } from "./launcher.ts";
export type { LauncherOptions } from "./launcher.ts";
export type { LaunchTarget, TargetLaunch, TargetLaunchContext } from "./targets/target.ts";
