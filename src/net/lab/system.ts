/**
 * The lab's only contact with the system: bounded commands (`ip`, `iptables`,
 * `losetup`, …) and long-running processes started inside a namespace with
 * their output in log files, so they outlive the command that started them
 * (`ferry lab up`) and are ended later by pid (`ferry lab down`).
 */
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync, readlinkSync, statSync } from "node:fs";
import { promisify } from "node:util";
import { FerryError } from "../../lib/errors.ts";

const execFileAsync = promisify(execFile);

export interface RunOptions {
  /** @default 30000 */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command (bounded), never throwing for a non-zero exit: the caller decides. */
export function tryRun(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: o.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: o.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr || (err && !stderr ? err.message : "")),
        });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

/** Runs a command (bounded) and returns its stdout; a non-zero exit is an error naming the command. */
export async function run(cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  if (o.input === undefined) {
    try {
      const { stdout } = await execFileAsync(cmd, args, {
        timeout: o.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
        env: o.env ?? process.env,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new FerryError(
        "LAB_COMMAND_FAILED",
        `${cmd} ${args.join(" ")} failed: ${(e.stderr || e.message).trim().slice(0, 500)}`,
        { kind: "internal" },
      );
    }
  }
  const r = await tryRun(cmd, args, o);
  if (r.code !== 0)
    throw new FerryError(
      "LAB_COMMAND_FAILED",
      `${cmd} ${args.join(" ")} failed: ${r.stderr.trim().slice(0, 500)}`,
      { kind: "internal" },
    );
  return r.stdout;
}

/** `ip netns exec <ns> cmd args…`, bounded. */
export function nsRun(ns: string, cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  return run("ip", ["netns", "exec", ns, cmd, ...args], o);
}

export function nsTryRun(ns: string, cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return tryRun("ip", ["netns", "exec", ns, cmd, ...args], o);
}

/**
 * Starts `cmd` inside `ns`, detached, stdout and stderr appended to the given
 * files. `ip netns exec` replaces itself with the command: the pid is the
 * program's own.
 */
export function spawnInNamespace(
  ns: string,
  cmd: string,
  args: string[],
  o: { stdoutFile: string; stderrFile: string; env?: NodeJS.ProcessEnv },
): number {
  const out = openSync(o.stdoutFile, "a");
  const err = openSync(o.stderrFile, "a");
  try {
    const child = spawn("ip", ["netns", "exec", ns, cmd, ...args], {
      detached: true,
      stdio: ["ignore", out, err],
      env: o.env ?? process.env,
    });
    child.on("error", () => {}); // reported through the readiness wait
    child.unref();
    if (child.pid === undefined) throw new FerryError("LAB_SPAWN_FAILED", `cannot start ${cmd} in ${ns}`);
    return child.pid;
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The network namespace a process lives in, as its /proc link reads (`net:[inode]`). */
export function processNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/** A named namespace in the form /proc/<pid>/ns/net links read. */
export function namedNamespace(ns: string): string | undefined {
  try {
    return `net:[${statSync(`/run/netns/${ns}`).ino}]`;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
