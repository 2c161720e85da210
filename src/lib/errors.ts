/**
 * Ferry's one error type. Every failure that crosses a component boundary is a
 * FerryError with a stable `code` (for scripts and tests) and a `kind`:
 * - `user`: the operator can fix it (bad flag, wrong token, unreachable peer);
 *   surfaces print the message and exit non-zero without a stack trace.
 * - `internal`: a bug or an invariant broken; surfaces print the stack.
 * Foreign errors (sockets, fs, schemas) are converted at the edge with `asFerryError`.
 */
export type ErrorKind = "user" | "internal";

export interface FerryErrorOptions {
  kind?: ErrorKind;
  /** Structured data for logs and JSON output (the value that failed, the peer, …). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class FerryError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FerryError";
    this.code = code;
    this.kind = options.kind ?? "user";
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, kind: this.kind, message: this.message, ...this.details };
  }
}

/** Node system errors carry `code` (ENOENT, ECONNREFUSED, …). */
export function systemErrorCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** Wraps any thrown value as a FerryError, keeping FerryErrors as they are. */
export function asFerryError(err: unknown, code = "INTERNAL", message?: string): FerryError {
  if (err instanceof FerryError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new FerryError(code, message ? `${message}: ${text}` : text, {
    kind: "internal",
    cause: err,
  });
}
