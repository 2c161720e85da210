/**
 * PostgreSQL through `pg`, for deployments where several `ferry server`
 * processes share one database. Row versions (optimistic concurrency) in the
 * store make concurrent updates safe; transactions use one pooled client.
 */
import pg from "pg";
import type { SqlClient, SqlValue } from "./sql.ts";

function clientOf(q: pg.Pool | pg.PoolClient, inTx: boolean, close: () => Promise<void>): SqlClient {
  const self: SqlClient = {
    dialect: "postgres",
    query: async <T extends Record<string, unknown>>(text: string, params: SqlValue[] = []) =>
      (await q.query(text, params as unknown[])).rows as T[],
    run: async (text: string, params: SqlValue[] = []) =>
      (await q.query(text, params as unknown[])).rowCount ?? 0,
    transaction: async (fn) => {
      if (inTx) return fn(self);
      const pool = q as pg.Pool;
      const c = await pool.connect();
      try {
        await c.query("BEGIN");
        const out = await fn(clientOf(c, true, async () => undefined));
        await c.query("COMMIT");
        return out;
      } catch (err) {
        await c.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
    },
    close,
  };
  return self;
}

export function openPostgres(url: string, options: { max?: number } = {}): SqlClient {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on("error", () => undefined);
  return clientOf(pool, false, () => pool.end());
}
