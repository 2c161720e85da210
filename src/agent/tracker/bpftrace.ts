/**
 * The tracer: bpftrace running a script on the block layer's
 * `block:block_rq_complete` tracepoint, filtered in the kernel to the traced
 * disk (and a partition's sector range) and to everything but reads. Each
 * completed write, write-zeroes or discard becomes one line (trace-parser.ts).
 * `block:block_rq_issue` reports the same requests when issued, so that a
 * completion the kernel never delivered can be placed (inflight.ts).
 * Reads are printed only when they cover the self-test sector, so the tracker
 * can prove the tracepoint fires for this device without writing to it.
 *
 * A `profile:hz:1` probe prints a tick once a second on every CPU. The kernel
 * reports a full ring buffer (a PERF_RECORD_LOST, which bpftrace prints as
 * "Lost N events") only with the next record written to that CPU's buffer; the
 * tick guarantees there is one within a second. It is also a heartbeat.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdir } from "node:fs/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { TraceParser, type TraceEvent } from "./trace-parser.ts";

const run = promisify(execFile);

export interface TraceTarget {
  major: number;
  minor: number;
  /** Restrict to [startSector, endSector) of the traced disk (a partition); omit for the whole disk. */
  range?: { startSector: number; endSector: number };
  /** Sector whose reads are reported as `probe` lines. */
  probeSector: number;
}

/** The kernel's internal dev_t in tracepoints: major << 20 | minor (include/linux/kdev_t.h). */
export function kernelDevT(major: number, minor: number): number {
  return major * 2 ** 20 + minor;
}

export function buildScript(t: TraceTarget): string {
  const filters = [`args->dev == (uint32)${kernelDevT(t.major, t.minor)}`, "args->nr_sector > 0"];
  if (t.range) {
    filters.push(`args->sector < (uint64)${t.range.endSector}`);
    filters.push(`args->sector + args->nr_sector > (uint64)${t.range.startSector}`);
  }
  const p = `(uint64)${t.probeSector}`;
  return [
    'BEGIN { printf("ready\\n"); }',
    'profile:hz:1 { printf("tick %llu\\n", nsecs); }',
    "tracepoint:block:block_rq_issue",
    `/${filters.join(" && ")}/`,
    "{",
    '  if (strncmp(args->rwbs, "R", 1) != 0) {',
    '    printf("i %llu %llu %u\\n", nsecs, args->sector, args->nr_sector);',
    "  }",
    "}",
    "tracepoint:block:block_rq_complete",
    `/${filters.join(" && ")}/`,
    "{",
    '  if (strncmp(args->rwbs, "R", 1) == 0) {',
    `    if (args->sector <= ${p} && args->sector + args->nr_sector > ${p}) {`,
    '      printf("probe %llu %llu %u\\n", nsecs, args->sector, args->nr_sector);',
    "    }",
    "  } else {",
    '    printf("%s %llu %llu %u\\n", args->rwbs, nsecs, args->sector, args->nr_sector);',
    "  }",
    "}",
    "",
  ].join("\n");
}

const TRACEFS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const TRACEPOINT = "events/block/block_rq_complete";

/** Where the block_rq_complete tracepoint is visible, mounting tracefs (or debugfs) if needed. */
export async function ensureTracefs(): Promise<{ ok: true; path: string } | { ok: false; reason: string }> {
  const found = async () => {
    for (const dir of TRACEFS) {
      try {
        await access(`${dir}/${TRACEPOINT}`);
        return dir;
      } catch {
        // not there
      }
    }
    return undefined;
  };
  let dir = await found();
  if (dir) return { ok: true, path: dir };
  const attempts: string[] = [];
  for (const [type, target] of [
    ["tracefs", "/sys/kernel/tracing"],
    ["debugfs", "/sys/kernel/debug"],
  ] as const) {
    try {
      await mkdir(target, { recursive: true });
      await run("mount", ["-t", type, type, target]);
    } catch (err) {
      attempts.push(`mount -t ${type} ${target}: ${(err as Error).message.split("\n")[0]}`);
    }
    dir = await found();
    if (dir) return { ok: true, path: dir };
  }
  return {
    ok: false,
    reason: `the block_rq_complete tracepoint is not visible in ${TRACEFS.join(" or ")} (${attempts.join("; ") || "mounted, but the kernel has no block tracepoints"})`,
  };
}

/** The bpftrace binary, if installed. */
export async function findBpftrace(path = "bpftrace"): Promise<string | undefined> {
  try {
    const { stdout } = await run(path, ["--version"], { timeout: 10_000 });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

export interface TracerHandlers {
  onEvent(e: TraceEvent): void;
  onExit(code: number | null, signal: NodeJS.Signals | null, stderr: string): void;
}

export interface TracerOptions {
  bpftracePath: string;
  /** Perf ring buffer pages per CPU (a power of two). */
  ringBufferPages: number;
}

/** A running bpftrace. Its stdout is parsed into events; stderr is kept (the tail) for error messages. */
export class Tracer {
  readonly child: ChildProcess;
  private stderr = "";
  private exited = false;
  private readonly exitPromise: Promise<void>;

  constructor(script: string, options: TracerOptions, handlers: TracerHandlers) {
    const parser = new TraceParser();
    this.child = spawn(options.bpftracePath, ["-B", "line", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, BPFTRACE_PERF_RB_PAGES: String(options.ringBufferPages) },
    });
    this.child.stdout!.on("data", (chunk: Buffer) => {
      for (const e of parser.push(chunk)) handlers.onEvent(e);
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString("utf8")).slice(-4096);
    });
    this.exitPromise = new Promise((resolve) => {
      // "close" comes after stdout has ended, so every printed line has been handled.
      this.child.on("close", (code, signal) => {
        this.exited = true;
        for (const e of parser.end()) handlers.onEvent(e);
        handlers.onExit(code, signal, this.stderrTail());
        resolve();
      });
      this.child.on("error", (err) => {
        this.stderr += `\n${err.message}`;
      });
    });
  }

  get running(): boolean {
    return !this.exited;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last meaningful lines of stderr (bpftrace's harmless RLIMIT_MEMLOCK note left out). */
  stderrTail(): string {
    return this.stderr
      .split("\n")
      .filter((l) => l.trim() && !l.includes("RLIMIT_MEMLOCK") && !l.includes("WARNING"))
      .slice(-5)
      .join(" | ");
  }

  /** SIGINT (bpftrace detaches and flushes), then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGINT");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  exited$(): Promise<void> {
    return this.exitPromise;
  }
}
