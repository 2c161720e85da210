/**
 * The one query layer over SQLite and PostgreSQL. Statements are written once
 * with `$1, $2, …` placeholders and portable types (TEXT, BIGINT, INTEGER);
 * each driver adapts them. Rows come back as plain objects.
 */
export type Dialect = "sqlite" | "postgres";

export type SqlValue = string | number | bigint | null;

export interface SqlClient {
  readonly dialect: Dialect;
  query<T extends Record<string, unknown>>(text: string, params?: SqlValue[]): Promise<T[]>;
  /** Runs a statement and returns the number of rows it changed. */
  run(text: string, params?: SqlValue[]): Promise<number>;
  /** Runs `fn` in one transaction; rolled back if it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** True for a unique-constraint violation from either driver. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (e.code === "23505") return true;
  return typeof e.message === "string" && e.message.includes("UNIQUE constraint failed");
}
