/**
 * Two network namespaces, `source` and `staging`, joined by a veth pair with
 * private addresses, for tests that put faults on the path between an agent
 * and a replicator. Names are unique per test run (parallel test files never
 * collide); everything created — processes started inside, rules, qdiscs,
 * the veth pair and the namespaces — is removed by id at `close()`, which a
 * test calls in `finally`/`after` whatever happened. Requires root.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Runs a command (bounded: 30 s) and returns its stdout. */
async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(cmd, args, { timeout: 30000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/**
 * Last resort when the test process exits without `close()` (a cancelled
 * test): kill what we started and delete the namespaces, synchronously.
 */
const unclosed = new Map<string, { pids: () => number[]; namespaces: string[] }>();
process.once("exit", () => {
  for (const { pids, namespaces } of unclosed.values()) {
    for (const pid of pids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const name of namespaces) {
      try {
        execFileSync("ip", ["netns", "del", name], { stdio: "ignore", timeout: 10000 });
      } catch {
        // already gone
      }
    }
  }
});

export type Side = "source" | "staging";

export interface NetPair {
  /** Namespace names. */
  ns: Record<Side, string>;
  /** Interface name inside each namespace. */
  dev: Record<Side, string>;
  /** Address of each side (a /24 private to these namespaces). */
  addr: Record<Side, string>;
  /** Runs a command inside a namespace and returns its stdout. */
  exec(side: Side, cmd: string, args: string[]): Promise<string>;
  /** Starts a long-running process inside a namespace; killed at `close()`. */
  spawn(side: Side, cmd: string, args: string[]): NsProcess;
  /** `iptables` inside a namespace; everything added is gone with the namespace. */
  iptables(side: Side, args: string[]): Promise<void>;
  /** `tc` inside a namespace, on its veth end. */
  tc(side: Side, args: string[]): Promise<void>;
  /** `ip link set <dev> up|down` inside a namespace. */
  link(side: Side, state: "up" | "down"): Promise<void>;
  close(): Promise<void>;
}

export interface NsProcess {
  child: ChildProcess;
  /** Writes a line to the process's stdin. */
  send(line: string): void;
  pid: number;
  /** Lines of stdout and stderr so far, with the time each arrived. */
  stdout: Line[];
  stderr: Line[];
  /** Resolves with the exit code (or the signal) when the process is gone. */
  exited: Promise<number | string>;
  /** Waits (bounded) for a line matching `pred` on stdout or stderr, from `from` on. */
  waitLine(
    stream: "stdout" | "stderr",
    pred: (line: string) => boolean,
    timeoutMs: number,
    from?: number,
  ): Promise<Line>;
  /** SIGKILL, then waits for the exit (bounded). */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Line {
  at: number;
  text: string;
}

const SUBNET = "10.250.0";

/**
 * Creates the namespaces and the link. On failure half-way, whatever was
 * created is removed before the error is thrown.
 */
export async function createNetPair(): Promise<NetPair> {
  // ≤ 15 characters for interface names; the pid keeps parallel runs apart, the random part repeated calls.
  const id = `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
  const ns: Record<Side, string> = { source: `ferry-${id}-src`, staging: `ferry-${id}-stg` };
  const dev: Record<Side, string> = { source: `fv${id}s`.slice(0, 15), staging: `fv${id}t`.slice(0, 15) };
  const addr: Record<Side, string> = { source: `${SUBNET}.1`, staging: `${SUBNET}.2` };
  const procs = new Set<NsProcess>();
  const created: Side[] = [];
  let closed = false;

  unclosed.set(id, { pids: () => [...procs].map((p) => p.pid), namespaces: Object.values(ns) });
  const close = async () => {
    if (closed) return;
    closed = true;
    const errors: unknown[] = [];
    for (const p of procs) await p.kill().catch((err: unknown) => errors.push(err));
    for (const side of created) {
      // Anything still running inside (started by a process of ours) keeps the namespace alive: end it by pid.
      const pids = await sh("ip", ["netns", "pids", ns[side]]).catch(() => "");
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // already gone
        }
      }
      // Deleting the namespace takes its end of the veth pair, its rules and its qdiscs with it.
      await sh("ip", ["netns", "del", ns[side]]).catch((err: unknown) => errors.push(err));
    }
    unclosed.delete(id);
    if (errors.length) throw new AggregateError(errors, "network namespace teardown failed");
  };

  try {
    for (const side of ["source", "staging"] as const) {
      await sh("ip", ["netns", "add", ns[side]]);
      created.push(side);
    }
    await sh("ip", ["link", "add", dev.source, "type", "veth", "peer", "name", dev.staging]);
    for (const side of ["source", "staging"] as const) {
      await sh("ip", ["link", "set", dev[side], "netns", ns[side]]);
      await sh("ip", ["-n", ns[side], "addr", "add", `${addr[side]}/24`, "dev", dev[side]]);
      await sh("ip", ["-n", ns[side], "link", "set", "lo", "up"]);
      await sh("ip", ["-n", ns[side], "link", "set", dev[side], "up"]);
    }
  } catch (err) {
    // A veth end not yet moved into a namespace lives in ours: remove it by name.
    await sh("ip", ["link", "del", dev.source]).catch(() => {});
    await close().catch(() => {});
    throw err;
  }

  const exec = (side: Side, cmd: string, args: string[]) =>
    sh("ip", ["netns", "exec", ns[side], cmd, ...args]);
  return {
    ns,
    dev,
    addr,
    exec,
    spawn(side, cmd, args) {
      if (closed) throw new Error("the network pair is closed");
      const p = spawnTracked(["netns", "exec", ns[side], cmd, ...args]);
      procs.add(p);
      void p.exited.then(() => procs.delete(p));
      return p;
    },
    async iptables(side, args) {
      await exec(side, "iptables", ["-w", "5", ...args]);
    },
    async tc(side, args) {
      await exec(side, "tc", args);
    },
    async link(side, state) {
      await sh("ip", ["-n", ns[side], "link", "set", dev[side], state]);
    },
    close,
  };
}

function spawnTracked(ipArgs: string[]): NsProcess {
  // `ip netns exec` replaces itself with the command (and bin/ferry execs node): the pid is the program's.
  const child = spawn("ip", ipArgs, { stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.on("error", () => {}); // a process that exits before reading its input
  const stdout: Line[] = [];
  const stderr: Line[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };
  const collect = (into: Line[]) => {
    let buf = "";
    return (chunk: Buffer) => {
      buf += chunk.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        into.push({ at: Date.now(), text: buf.slice(0, i) });
        buf = buf.slice(i + 1);
      }
      notify();
    };
  };
  child.stdout.on("data", collect(stdout));
  child.stderr.on("data", collect(stderr));
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve(code ?? signal ?? "unknown");
      notify();
    });
    child.once("error", (err) => {
      done = true;
      resolve(err.message);
      notify();
    });
  });
  const pid = child.pid ?? -1;
  return {
    child,
    send: (line) => void child.stdin.write(`${line}\n`),
    pid,
    stdout,
    stderr,
    exited,
    async waitLine(stream, pred, timeoutMs, from = 0) {
      const lines = stream === "stdout" ? stdout : stderr;
      const deadline = Date.now() + timeoutMs;
      for (let seen = from; ;) {
        for (; seen < lines.length; seen++) if (pred(lines[seen]!.text)) return lines[seen]!;
        if (done) await new Promise((r) => setTimeout(r, 50)); // let the last output arrive
        if (done && seen >= lines.length) {
          throw new Error(
            `process ${pid} exited (${String(await exited)}) before the awaited line; stderr:\n${tail(stderr)}`,
          );
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no awaited line within ${timeoutMs} ms; stderr:\n${tail(stderr)}`);
        await new Promise<void>((r) => {
          const t = setTimeout(done_, Math.min(left, 250));
          function done_() {
            clearTimeout(t);
            waiters.delete(done_);
            r();
          }
          waiters.add(done_);
        });
      }
    },
    async kill(signal = "SIGKILL") {
      if (done || pid < 0) return;
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
      const t = new Promise((r) => setTimeout(r, 10000, "timeout"));
      if ((await Promise.race([exited, t])) === "timeout") throw new Error(`process ${pid} did not exit`);
    },
  };
}

function tail(lines: Line[], n = 15): string {
  return lines
    .slice(-n)
    .map((l) => l.text)
    .join("\n");
}
