/** Structured JSON logs: one object per line, with time, level, component and message. */
import type { Writable } from "node:stream";

export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  /** @default process.stderr */
  stream?: Writable;
  /** FERRY_LOG_LEVEL in the environment, when set, takes precedence. @default "info" */
  level?: LogLevel;
  fields?: Record<string, unknown>;
}

/** FERRY_LOG_LEVEL, when it names a level: it overrides every command's default (`debug` shows e.g. each turn of the continuous loop). */
function levelFromEnvironment(): LogLevel | undefined {
  const v = process.env.FERRY_LOG_LEVEL?.toLowerCase();
  return v && v in ORDER ? (v as LogLevel) : undefined;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const min = ORDER[levelFromEnvironment() ?? options.level ?? "info"];
  const base = options.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const line = { time: new Date().toISOString(), level, ...base, msg, ...fields };
    stream.write(`${JSON.stringify(line, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...options, stream, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
