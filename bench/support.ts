/** Shared pieces of the benchmarks: commands with timing, images, cache dropping. */
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface Timed {
  seconds: number;
  userSeconds: number;
  sysSeconds: number;
  maxRssKiB: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and measures its wall time (CPU and RSS stay NaN; see timedWithUsage). */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`));
        return;
      }
      // CPU and peak RSS of the child need wait4's figures: see timedWithUsage.
      resolve({ seconds, userSeconds: NaN, sysSeconds: NaN, maxRssKiB: NaN, stdout, stderr });
    });
  });
}

/** Like `timed`, through GNU time for CPU seconds and peak RSS. */
export async function timedWithUsage(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Timed> {
  const r = await timed("/usr/bin/time", ["-f", "FERRY_TIME %e %U %S %M", cmd, ...args], env);
  const line = r.stderr.split("\n").find((l) => l.startsWith("FERRY_TIME "));
  if (!line) return r;
  const [, , u, s, m] = line.split(" ").map(Number);
  return { ...r, userSeconds: u!, sysSeconds: s!, maxRssKiB: m! };
}

export async function dropCaches(): Promise<void> {
  if (!isRoot()) return;
  await timed("sync", []);
  await writeFile("/proc/sys/vm/drop_caches", "3\n").catch(() => {});
}

/**
 * The benchmark disk: in 1 MiB stripes, 50% zeros, 25% text-like (a log of
 * varied lines), 25% random. Written sparse.
 */
export async function writeBenchImage(path: string, bytes: number): Promise<void> {
  const fh = await open(path, "w");
  try {
    const text: Buffer[] = [];
    for (let t = 0; t < 16; t++) {
      const lines: string[] = [];
      let len = 0;
      for (let i = 0; len < MiB; i++) {
        const l = `2026-11-25T0${t % 10}:${String(i % 60).padStart(2, "0")}:${String((i * 7) % 60).padStart(2, "0")}Z host-${t} app[${1000 + ((i * 13) % 997)}]: GET /api/v1/items/${(i * 7919) % 100000} status=${[200, 200, 200, 404, 500][i % 5]} bytes=${(i * 31) % 65536} dur=${(i * 17) % 1000}ms\n`;
        lines.push(l);
        len += l.length;
      }
      text.push(Buffer.from(lines.join("")).subarray(0, MiB));
    }
    const random = Buffer.alloc(MiB);
    for (let off = 0, i = 0; off < bytes; off += MiB, i++) {
      const n = Math.min(MiB, bytes - off);
      const kind = i % 4;
      if (kind === 0 || kind === 2) continue;
      const buf = kind === 1 ? text[(i >> 2) % text.length]! : randomFillSync(random);
      await fh.write(buf, 0, n, off);
    }
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

export function ratio(a: number, b: number): string {
  return (a / b).toFixed(2);
}

export function mbps(bytes: number, seconds: number): number {
  return bytes / seconds / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Current and peak RSS of a live process, in KiB (NaN once it is gone). */
export async function rssKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

export interface ReplicatorProcess {
  port: number;
  fingerprint: string;
  token: string;
  pid: number;
  stop: () => Promise<void>;
}

/** `ferry replicator run` on a loopback port with its data in `dataDir`; resolves once it listens. */
export async function startReplicatorProcess(
  dataDir: string,
  o: { env?: NodeJS.ProcessEnv; stderr?: "inherit" | "ignore" } = {},
): Promise<ReplicatorProcess> {
  const ferry = join(import.meta.dirname, "..", "bin", "ferry");
  const child = spawn(
    ferry,
    ["replicator", "run", "--json", "--listen", "127.0.0.1:0", "--data-dir", dataDir],
    {
      stdio: ["ignore", "pipe", o.stderr ?? "ignore"],
      env: o.env ?? process.env,
    },
  );
  const first = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("the replicator did not start in 30 s")), 30_000);
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, i));
      }
    });
    child.on("exit", (c) => reject(new Error(`replicator exited ${c}`)));
  });
  child.stdout.resume();
  const info = JSON.parse(first) as { port: number; fingerprint: string; token: string };
  return {
    ...info,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
