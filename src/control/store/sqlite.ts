/**
 * SQLite through node:sqlite (the default store, one file in the data dir).
 * node:sqlite is synchronous and one connection is shared, so statements and
 * transactions are serialized through one queue: an `await` inside a
 * transaction never lets another request's statement slip into it.
 * WAL mode and a busy timeout let a second process (`ferry access-key`)
 * use the same file while the server runs.
 */
import { DatabaseSync } from "node:sqlite";
import type { SqlClient, SqlValue } from "./sql.ts";

function adapt(text: string): string {
  // `$n` → `?n`: SQLite's numbered parameters bind positionally like PostgreSQL's.
  return text.replace(/\$(\d+)/g, "?$1");
}

export function openSqlite(path: string): SqlClient {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;");
  const cache = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  const prepare = (text: string) => {
    let s = cache.get(text);
    if (!s) {
      s = db.prepare(adapt(text));
      cache.set(text, s);
    }
    return s;
  };
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(fn: () => Promise<T> | T): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };
  const direct: SqlClient = {
    dialect: "sqlite",
    query: async <T extends Record<string, unknown>>(text: string, params: SqlValue[] = []) =>
      prepare(text).all(...params) as T[],
    run: async (text: string, params: SqlValue[] = []) => Number(prepare(text).run(...params).changes),
    transaction: (fn) => fn(direct),
    close: async () => undefined,
  };
  return {
    dialect: "sqlite",
    query: (text, params) => serialize(() => direct.query(text, params)),
    run: (text, params) => serialize(() => direct.run(text, params)),
    transaction: (fn) =>
      serialize(async () => {
        db.exec("BEGIN IMMEDIATE");
        try {
          const out = await fn(direct);
          db.exec("COMMIT");
          return out;
        } catch (err) {
          db.exec("ROLLBACK");
          throw err;
        }
      }),
    close: () =>
      serialize(async () => {
        cache.clear();
        db.close();
      }),
  };
}
