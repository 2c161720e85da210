/**
 * The probes of bench/continuous.ts: process CPU and memory from /proc, the
 * agent's memory log, the disk probe, and the lag probe that follows the
 * replicator's staging files for the bench's markers.
 */
import type { ChildProcess } from "node:child_process";
import { type FileHandle, open, readFile, readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function cpuSeconds(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/stat`, "utf8").then((t) => {
    const f = t.slice(t.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  });
}

/** The first child of `pid` running `comm`, if any. */
export async function childPid(pid: number, comm: string): Promise<number | undefined> {
  const kids = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  for (const k of kids.split(" ").filter(Boolean)) {
    const name = await readFile(`/proc/${k}/comm`, "utf8").catch(() => "");
    if (name.trim() === comm) return Number(k);
  }
  return undefined;
}

export async function peakRssMiB(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
}

/**
 * Loaded into the agent (NODE_OPTIONS=--import): appends process.memoryUsage()
 * to $FERRY_BENCH_MEMLOG every second, so the peak RSS can be broken down
 * into the V8 heap (reserved and used), external memory and array buffers.
 */
const MEMLOG_SOURCE = `
import { appendFileSync } from "node:fs";
import { isMainThread } from "node:worker_threads";
const file = process.env.FERRY_BENCH_MEMLOG;
// Worker threads load it too: their heaps are not the main thread's.
if (file && isMainThread) {
  setInterval(() => {
    const m = process.memoryUsage();
    appendFileSync(file, JSON.stringify({ t: Date.now(), ...m }) + "\\n");
  }, 1000).unref();
}`;
export const MEMLOG_URL = `data:text/javascript;base64,${Buffer.from(MEMLOG_SOURCE).toString("base64")}`;

/**
 * The disk's own stalls, measured beside the load: a 4 KiB O_DIRECT read of the source disk's
 * image file (the disk under the loop device and the staging store) every 100 ms, from its own
 * process; prints "start-time-ms latency-ms" lines. A marker late by a stall of the disk
 * itself is not the pipeline's delay.
 */
export const DISK_PROBE_SOURCE = `
const { openSync, readSync, constants } = require("node:fs");
const fd = openSync(process.argv[1], constants.O_RDONLY | constants.O_DIRECT);
const slab = Buffer.allocUnsafeSlow(3 * 4096);
let off = 0;
for (; off < 4096; off += 16) { try { readSync(fd, slab, off, 4096, 0); break; } catch {} }
const buf = slab.subarray(off, off + 4096);
const blocks = Math.max(1, Math.floor(Number(process.argv[2]) / 4096));
const tick = () => {
  const at = Date.now();
  const t = performance.now();
  readSync(fd, buf, 0, 4096, Math.floor(Math.random() * blocks) * 4096);
  process.stdout.write(at + " " + (performance.now() - t).toFixed(1) + "\\n");
  setTimeout(tick, 100);
};
tick();`;

export interface MemorySample {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** The sample with the highest RSS from `from` (ms since the epoch) on, in MiB. */
export async function memoryAtPeak(file: string, from = 0): Promise<Record<string, number> | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  let peak: MemorySample | undefined;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const m = JSON.parse(line) as MemorySample;
    if (m.t >= from && (!peak || m.rss > peak.rss)) peak = m;
  }
  if (!peak) return undefined;
  const mib = (x: number) => Math.round(x / 1048576);
  return {
    rssMiB: mib(peak.rss),
    heapTotalMiB: mib(peak.heapTotal),
    heapUsedMiB: mib(peak.heapUsed),
    externalMiB: mib(peak.external),
    arrayBuffersMiB: mib(peak.arrayBuffers),
  };
}

export function jsonLines(child: ChildProcess, onLine: (v: Record<string, unknown>) => void): void {
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
  });
}

/**
 * Follows every file under a directory as it grows and finds byte patterns in
 * what was appended (with an overlap, so a pattern cut between two reads is
 * found). Layout-agnostic: it relies only on the replicator appending the
 * bytes it receives somewhere under its data directory.
 */
export class AppendFollower {
  private readonly dir: string;
  /**
   * By inode, not by name: the store renames a segment when it seals it (`….open` → its final
   * name), and reading the renamed file again from its start (~300 MB at 20 MB/s of 4 KiB
   * writes) took the probe a second or more, every time a segment was sealed. The key is the
   * inode of the file actually opened (fstat), and its handle stays open, so no other file can
   * take that inode number while it is a key here. (Keyed by a `stat` of the name before
   * opening it, a file renamed over that name in between — the store writes some files to a
   * temporary name and renames them into place — left a key whose handle read another file;
   * once the first file was deleted, its inode number could go to a new segment, and the
   * probe read the wrong file for it and never saw the markers in it.) A file missing from
   * the directory for two passes is let go; its inode number may then be reused, by a file
   * this follower will read from its start.
   */
  private readonly files = new Map<number, { fh: FileHandle; pos: number; tail: Buffer; missed: number }>();
  private readonly buf = Buffer.alloc(4 * 1024 * 1024);
  constructor(dir: string) {
    this.dir = dir;
  }
  /** What this follower has read of `path`'s inode: its position, and the file's size now. */
  async state(path: string): Promise<{ ino: number; size: number; followedTo: number | null } | undefined> {
    const st = await stat(path).catch(() => undefined);
    if (!st) return undefined;
    return { ino: st.ino, size: st.size, followedTo: this.files.get(st.ino)?.pos ?? null };
  }
  async contains(pattern: Buffer): Promise<boolean> {
    let found = false;
    const entries = await readdir(this.dir, { recursive: true }).catch(() => undefined);
    if (!entries) return false;
    const seen = new Set<number>();
    for (const rel of entries) {
      const path = join(this.dir, rel);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      let f = this.files.get(st.ino);
      if (!f) {
        // Temporary files come and go (written, then renamed into place).
        const fh = await open(path, "r").catch(() => undefined);
        if (!fh) continue;
        const ino = (await fh.stat()).ino;
        seen.add(ino);
        f = this.files.get(ino);
        if (f) await fh.close();
        else {
          f = { fh, pos: 0, tail: Buffer.alloc(0), missed: 0 };
          this.files.set(ino, f);
        }
      }
      seen.add(st.ino);
      for (;;) {
        const buf = this.buf;
        const { bytesRead } = await f.fh.read(buf, 0, buf.length, f.pos);
        if (bytesRead === 0) break;
        f.pos += bytesRead;
        const chunk = Buffer.concat([f.tail, buf.subarray(0, bytesRead)]);
        if (chunk.includes(pattern)) found = true;
        f.tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - pattern.length)));
      }
    }
    // Files gone from the directory for two passes are let go (one pass can miss a file renamed
    // while it ran): their handles would pile up, as a head record is rewritten with every flush.
    for (const [ino, f] of this.files) {
      if (seen.has(ino)) f.missed = 0;
      else if (++f.missed >= 2) {
        await f.fh.close();
        this.files.delete(ino);
      }
    }
    return found;
  }
  async close(): Promise<void> {
    for (const f of this.files.values()) await f.fh.close();
  }
}

export interface SlowMarker {
  n: number;
  /** When it was written, ms since the load began. */
  at: number;
  /** Whether it was in the staging files when the fresh read began (then the lag probe had missed it). */
  inStagingFiles: boolean;
  freshLookMs: number;
  /** The agent's last reported backlog. */
  agentBacklogBytes: number;
  /** Where the fresh read found it, and that file's size and how far the lag probe had read it, when the fresh read began. */
  file?: string;
  probeState?: { ino: number; size: number; followedTo: number | null };
}

/**
 * Reads every staging file from its start up to the size it had when this
 * began, looking for `pattern`: found means the marker was in the files at
 * that moment (while the probe had not seen it), not that it arrived during
 * this read (~3 s for ~3 GB).
 */
export async function freshLook(
  staging: string,
  follower: AppendFollower,
  pattern: Buffer,
  n: number,
  at: number,
  agentBacklogBytes: number,
): Promise<SlowMarker> {
  const t0 = performance.now();
  const files: { path: string; size: number }[] = [];
  for (const rel of await readdir(staging, { recursive: true }).catch(() => [] as string[])) {
    const path = join(staging, rel);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile()) files.push({ path, size: st.size });
  }
  const states = await Promise.all(files.map((f) => follower.state(f.path)));
  let file: string | undefined;
  let probeState: SlowMarker["probeState"];
  const buf = Buffer.alloc(4 * 1024 * 1024);
  for (const [i, f] of files.entries()) {
    const fh = await open(f.path, "r").catch(() => undefined);
    if (!fh) continue; // a temporary file, renamed since
    try {
      let tail = Buffer.alloc(0);
      for (let pos = 0; pos < f.size && !file;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, f.size - pos), pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const chunk = Buffer.concat([tail, buf.subarray(0, bytesRead)]);
        if (chunk.includes(pattern)) {
          file = relative(staging, f.path);
          probeState = states[i];
        }
        tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - pattern.length)));
      }
    } finally {
      await fh.close();
    }
    if (file) break;
  }
  return {
    n,
    at: Math.round(at),
    inStagingFiles: file !== undefined,
    freshLookMs: Math.round(performance.now() - t0),
    agentBacklogBytes,
    ...(file ? { file, probeState } : {}),
  };
}
