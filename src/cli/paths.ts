import { homedir } from "node:os";
import { join } from "node:path";

/** Default base directory for Ferry's state: FERRY_HOME, else /var/lib/ferry as root, else ~/.local/share/ferry. */
export function defaultHome(env: NodeJS.ProcessEnv): string {
  if (env.FERRY_HOME) return env.FERRY_HOME;
  return process.getuid?.() === 0 ? "/var/lib/ferry" : join(homedir(), ".local", "share", "ferry");
}
