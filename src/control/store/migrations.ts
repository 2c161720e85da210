/**
 * Versioned schema migrations, the same statements for both databases.
 * Applied in order inside one transaction; PostgreSQL serializes concurrent
 * starters with an advisory lock so two servers never migrate at once.
 */
import type { SqlClient } from "./sql.ts";

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "initial",
    statements: [
      `CREATE TABLE service_state (id INTEGER PRIMARY KEY, initialized_at BIGINT NOT NULL)`,
      `CREATE TABLE access_keys (
         access_key_id TEXT PRIMARY KEY,
         scope TEXT NOT NULL,
         source_server_id TEXT,
         description TEXT NOT NULL,
         secret_ciphertext TEXT NOT NULL,
         created_at BIGINT NOT NULL)`,
      `CREATE INDEX access_keys_server ON access_keys (source_server_id)`,
      `CREATE TABLE source_servers (
         source_server_id TEXT PRIMARY KEY,
         identity TEXT NOT NULL,
         created_at BIGINT NOT NULL,
         version INTEGER NOT NULL,
         doc TEXT NOT NULL)`,
      `CREATE UNIQUE INDEX source_servers_identity ON source_servers (identity)`,
      `CREATE INDEX source_servers_order ON source_servers (created_at, source_server_id)`,
      `CREATE TABLE replication_templates (
         template_id TEXT PRIMARY KEY,
         created_at BIGINT NOT NULL,
         version INTEGER NOT NULL,
         doc TEXT NOT NULL)`,
      `CREATE TABLE jobs (
         job_id TEXT PRIMARY KEY,
         created_at BIGINT NOT NULL,
         version INTEGER NOT NULL,
         doc TEXT NOT NULL)`,
      `CREATE TABLE job_log_items (
         job_id TEXT NOT NULL,
         seq INTEGER NOT NULL,
         doc TEXT NOT NULL,
         PRIMARY KEY (job_id, seq))`,
    ],
  },
  {
    version: 2,
    name: "covering index for listings",
    // Listings read ids and row versions in creation order (store.ts); this
    // index answers them without touching the documents.
    statements: [
      `CREATE INDEX source_servers_list ON source_servers (created_at, source_server_id, version)`,
    ],
  },
  {
    version: 3,
    name: "replicators",
    statements: [
      `CREATE TABLE replicators (
         replicator_id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         created_at BIGINT NOT NULL,
         version INTEGER NOT NULL,
         doc TEXT NOT NULL)`,
      `CREATE UNIQUE INDEX replicators_name ON replicators (name)`,
    ],
  },
  {
    version: 4,
    name: "settings",
    // What the running server decided that its other readers need (settings.ts): the
    // CLI on the same database reads the store, not the server's flags.
    statements: [
      `CREATE TABLE settings (
         name TEXT PRIMARY KEY,
         value TEXT NOT NULL,
         updated_at BIGINT NOT NULL)`,
    ],
  },
];

const LOCK_KEY = 0x66657272; // "ferr"

export async function migrate(sql: SqlClient, migrations: Migration[] = MIGRATIONS): Promise<number> {
  return sql.transaction(async (tx) => {
    if (tx.dialect === "postgres") await tx.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.run(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
    );
    const done = new Set(
      (await tx.query<{ version: number }>(`SELECT version FROM schema_migrations`)).map((r) =>
        Number(r.version),
      ),
    );
    let applied = 0;
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      for (const s of m.statements) await tx.run(s);
      await tx.run(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
        m.version,
        m.name,
        Date.now(),
      ]);
      applied++;
    }
    return applied;
  });
}
