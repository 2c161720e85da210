import type { Writable } from "node:stream";

/** What a command may touch of the outside world; tests pass captured streams. */
export interface CliContext {
  stdout: Writable;
  stderr: Writable;
  /** True when stderr is a terminal: progress bars instead of plain lines. */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM; long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
  /** Set by a command that completed but must exit non-zero (e.g. a failed verification). */
  exitCode?: number;
}

export function writeLine(stream: Writable, line = ""): void {
  stream.write(`${line}\n`);
}

export function writeJson(stream: Writable, value: unknown): void {
  stream.write(`${JSON.stringify(value)}\n`);
}
