/**
 * `bench/continuous.ts --trace-markers`: where a marker's lag is spent. A
 * bpftrace of its own follows the marker's block on the source device: when
 * the kernel completed the write (block_rq_complete), and when the agent read
 * the block back (its pread64 calls that cover it). With the bench's own times
 * (write, fdatasync returned, bytes found in the staging files) each marker's
 * lag splits into: the write reaching the device, the agent picking it up (its
 * tracker, its loop), and everything after the read (frames, TLS, the
 * replicator, its store). All times are CLOCK_MONOTONIC (bpftrace's `nsecs`,
 * Node's `process.hrtime`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { stat } from "node:fs/promises";
import { timed } from "./support.ts";

/** The byte offset on its device of a file's first block (FIEMAP through filefrag). */
export async function firstBlockOffset(path: string): Promise<number> {
  const out = (await timed("filefrag", ["-e", "-b4096", path])).stdout;
  // "   0:        0..       0:      34816..     34816:      1:             last,eof"
  const m = /^\s*0:\s*0\.\.\s*\d+:\s*(\d+)\.\./m.exec(out);
  if (!m) throw new Error(`filefrag found no first extent for ${path}:\n${out}`);
  return Number(m[1]) * 4096;
}

/** The block device a path's filesystem lives on, as major and minor numbers. */
export async function deviceOf(devicePath: string): Promise<{ major: number; minor: number }> {
  const rdev = (await stat(devicePath)).rdev;
  return { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

export interface MarkerEvent {
  kind: "complete" | "read" | "readDone";
  ns: bigint;
}

export interface MarkerTimes {
  n: number;
  writeNs: bigint;
  syncedNs: bigint;
  foundNs: bigint;
}

/** A bpftrace following one block: write completions on the device and the agent's reads of it. */
export class MarkerTracer {
  readonly child: ChildProcess;
  readonly events: MarkerEvent[] = [];
  readonly ready: Promise<void>;
  private buf = "";
  private stderr = "";

  constructor(device: { major: number; minor: number }, offset: number, agentPid: number) {
    const devT = (device.major << 20) | device.minor;
    const sector = offset / 512;
    const script = `
tracepoint:block:block_rq_complete /args->dev == (uint32)${devT} && args->sector <= ${sector} && args->sector + args->nr_sector > ${sector}/ { if (strncmp(args->rwbs, "R", 1) != 0) { printf("C %llu\\n", nsecs); } }
tracepoint:syscalls:sys_enter_pread64 /pid == ${agentPid} && args->pos <= ${offset} && args->pos + args->count > ${offset}/ { @r[tid] = 1; printf("R %llu\\n", nsecs); }
tracepoint:syscalls:sys_exit_pread64 /@r[tid]/ { delete(@r[tid]); printf("D %llu\\n", nsecs); }
BEGIN { printf("READY\\n"); }
`;
    this.child = spawn("bpftrace", ["-B", "line", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.ready = new Promise((resolve, reject) => {
      this.child.once("exit", (code) => reject(new Error(`bpftrace exited (${code}): ${this.stderr}`)));
      this.child.stdout!.on("data", (d: Buffer) => {
        this.buf += d.toString();
        for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
          const line = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 1);
          if (line === "READY") resolve();
          const [k, ns] = line.split(" ");
          const kind = k === "C" ? "complete" : k === "R" ? "read" : k === "D" ? "readDone" : undefined;
          if (kind && ns) this.events.push({ kind, ns: BigInt(ns) });
        }
      });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill("SIGINT");
    await new Promise((r) => {
      this.child.once("exit", r);
      setTimeout(r, 5000).unref();
    });
  }
}

const ms = (ns: bigint) => Number(ns) / 1e6;

/**
 * Each marker's lag in parts: `device` (write to completion), `pickup`
 * (completion to the agent's first read after it), `read` (the read itself),
 * `afterRead` (read done to found in the staging files).
 */
export function splitLags(markers: MarkerTimes[], events: MarkerEvent[]) {
  return markers.map((m) => {
    const after = (kind: MarkerEvent["kind"], from: bigint) =>
      events.find((e) => e.kind === kind && e.ns >= from && e.ns <= m.foundNs);
    const complete = after("complete", m.writeNs);
    const read = complete ? after("read", complete.ns) : undefined;
    // The read that carried the marker is the last one done before it was found.
    const done = events.filter((e) => e.kind === "readDone" && e.ns >= m.writeNs && e.ns <= m.foundNs).at(-1);
    const reads = events.filter((e) => e.kind === "read" && e.ns >= m.writeNs && e.ns <= m.foundNs).length;
    return {
      n: m.n,
      lagMs: Math.round(ms(m.foundNs - m.syncedNs)),
      deviceMs: complete ? Math.round(ms(complete.ns - m.writeNs)) : null,
      pickupMs: complete && read ? Math.round(ms(read.ns - complete.ns)) : null,
      firstReadMs: read
        ? Math.round(ms((after("readDone", read.ns)?.ns ?? read.ns) - read.ns) * 10) / 10
        : null,
      afterReadMs: done ? Math.round(ms(m.foundNs - done.ns)) : null,
      readsMeanwhile: reads,
      /** The bench's own write + fdatasync. */
      syncMs: Math.round(ms(m.syncedNs - m.writeNs)),
      // A late marker: every traced event from its write to when it was found (ms after the write).
      ...(ms(m.foundNs - m.syncedNs) > 1000
        ? {
            events: events
              .filter((e) => e.ns >= m.writeNs && e.ns <= m.foundNs)
              .map(
                (e) => `${e.kind[0]}${e.kind === "readDone" ? "d" : ""}@${Math.round(ms(e.ns - m.writeNs))}`,
              )
              .join(" "),
          }
        : {}),
    };
  });
}

/** Whether the device holds `pattern` at `offset` (an O_DIRECT read with dd: what the agent would read). */
export async function deviceHolds(device: string, offset: number, pattern: Buffer): Promise<boolean> {
  const r = await timed("sh", [
    "-c",
    `dd if=${device} bs=4096 skip=${offset / 4096} count=1 iflag=direct status=none | od -An -tx1 -v`,
  ]);
  return Buffer.from(r.stdout.replace(/\s+/g, ""), "hex").subarray(0, pattern.length).equals(pattern);
}

/** What the tracer saw of a marker still missing: the write's completions and the agent's reads since. */
export function sinceWrite(events: MarkerEvent[], writeNs: bigint) {
  const later = events.filter((e) => e.ns >= writeNs);
  return {
    completions: later.filter((e) => e.kind === "complete").map((e) => Math.round(ms(e.ns - writeNs))),
    reads: later.filter((e) => e.kind === "read").map((e) => Math.round(ms(e.ns - writeNs))),
  };
}

/**
 * The `recursion_misses` of every loaded block_rq_complete (or block_rq_issue) program, by program id, from
 * `bpftool prog show --json`; undefined without bpftool. The kernel skips a tracepoint's BPF
 * programs when another BPF program is running on that CPU (the completion arrived in an
 * interrupt, or a softirq, on top of it), and counts the skip here: a completion the tracker
 * never sees, found later by its counter check.
 */
export async function rqRecursionMisses(
  program: "block_rq_complete" | "block_rq_issue",
): Promise<Map<number, number> | undefined> {
  const r = await timed("bpftool", ["prog", "show", "--json"]).catch(() => undefined);
  if (!r) return undefined;
  const progs = JSON.parse(r.stdout) as { id: number; name?: string; recursion_misses?: number }[];
  // The kernel keeps 15 characters of a program's name.
  const name = program.slice(0, 15);
  return new Map(progs.filter((p) => p.name === name).map((p) => [p.id, p.recursion_misses ?? 0]));
}

/** The largest growth of one program's recursion misses between two readings (programs in both). */
export function recursionMissesBetween(
  before: Map<number, number> | undefined,
  after: Map<number, number> | undefined,
): number | null {
  if (!before || !after) return null;
  let most = 0;
  for (const [id, n] of after) if (before.has(id)) most = Math.max(most, n - before.get(id)!);
  return most;
}
