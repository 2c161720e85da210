/**
 * The control plane's state, over either database. Documents (source
 * servers, templates, jobs) are stored as JSON with a row version: every
 * update is read → change → `UPDATE … WHERE version = $read`, retried when
 * another process got there first, so several servers on one PostgreSQL never
 * lose an update.
 */
import type { SqlClient, SqlValue } from "./sql.ts";
import { isUniqueViolation } from "./sql.ts";
import { migrate } from "./migrations.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import type { Job, JobLog, ReplicationConfigurationTemplate } from "../../model/mgn-shapes.gen.ts";
import type { ReplicatorRecord } from "../../model/replicator.ts";
import { FerryError } from "../../lib/errors.ts";

export type AccessKeyScope = "operator" | "install" | "replicator" | "agent";

export interface AccessKeyRow {
  accessKeyId: string;
  scope: AccessKeyScope;
  /** Set for `agent` keys: the one source server they may report for. */
  sourceServerID?: string;
  description: string;
  secretCiphertext: string;
  createdAt: number;
}

const MAX_UPDATE_ATTEMPTS = 20;
/** Rows fetched per `IN (…)` query when refreshing the list cache. */
const LIST_CHUNK = 500;

/** A table of JSON documents keyed by id, with optimistic concurrency. */
export class DocTable<T> {
  private readonly cache = new Map<string, { version: number; doc: T }>();
  private readonly sql: SqlClient;
  private readonly table: string;
  private readonly idColumn: string;
  constructor(sql: SqlClient, table: string, idColumn: string) {
    this.sql = sql;
    this.table = table;
    this.idColumn = idColumn;
  }

  async get(id: string): Promise<T | undefined> {
    const rows = await this.sql.query<{ doc: string }>(
      `SELECT doc FROM ${this.table} WHERE ${this.idColumn} = $1`,
      [id],
    );
    return rows[0] ? (JSON.parse(rows[0].doc) as T) : undefined;
  }

  /**
   * Every document, oldest first (MGN lists in creation order). Parsed
   * documents are cached by row version: a listing reads only ids and
   * versions, then fetches and parses just the rows that changed — another
   * server's writes bump the version, so the cache is never stale. The
   * returned documents are shared: callers must not mutate them.
   */
  async list(): Promise<T[]> {
    const rows = await this.sql.query<{ id: string; version: number }>(
      `SELECT ${this.idColumn} AS id, version FROM ${this.table} ORDER BY created_at, ${this.idColumn}`,
    );
    const stale = rows.filter((r) => this.cache.get(r.id)?.version !== Number(r.version)).map((r) => r.id);
    for (let i = 0; i < stale.length; i += LIST_CHUNK) {
      const chunk = stale.slice(i, i + LIST_CHUNK);
      const fetched = await this.sql.query<{ id: string; version: number; doc: string }>(
        `SELECT ${this.idColumn} AS id, version, doc FROM ${this.table} WHERE ${this.idColumn} IN (${chunk.map((_, j) => `$${j + 1}`).join(", ")})`,
        chunk,
      );
      for (const f of fetched)
        this.cache.set(f.id, { version: Number(f.version), doc: JSON.parse(f.doc) as T });
    }
    if (this.cache.size > rows.length) {
      const live = new Set(rows.map((r) => r.id));
      for (const id of this.cache.keys()) if (!live.has(id)) this.cache.delete(id);
    }
    const out: T[] = [];
    for (const r of rows) {
      const c = this.cache.get(r.id);
      if (c) out.push(c.doc);
    }
    return out;
  }

  async insert(id: string, doc: T, createdAt: number, extra: Record<string, SqlValue> = {}): Promise<void> {
    const cols = [this.idColumn, "created_at", "version", "doc", ...Object.keys(extra)];
    const vals: SqlValue[] = [id, createdAt, 1, JSON.stringify(doc), ...Object.values(extra)];
    await this.sql.run(
      `INSERT INTO ${this.table} (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`,
      vals,
    );
  }

  /**
   * Applies `change` to the current document and writes it if nobody else
   * wrote in between; otherwise reads again and retries. `change` must be
   * pure (it may run more than once) and may throw to refuse.
   */
  async update(id: string, change: (doc: T) => T): Promise<T | undefined> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const rows = await this.sql.query<{ doc: string; version: number }>(
        `SELECT doc, version FROM ${this.table} WHERE ${this.idColumn} = $1`,
        [id],
      );
      const row = rows[0];
      if (!row) return undefined;
      const next = change(JSON.parse(row.doc) as T);
      const version = Number(row.version);
      const n = await this.sql.run(
        `UPDATE ${this.table} SET doc = $1, version = $2 WHERE ${this.idColumn} = $3 AND version = $4`,
        [JSON.stringify(next), version + 1, id, version],
      );
      if (n === 1) return next;
    }
    throw new FerryError(
      "STORE_CONTENTION",
      `Could not update ${this.table} ${id}: ${MAX_UPDATE_ATTEMPTS} concurrent writers won in a row. Retry the request.`,
      {
        kind: "internal",
      },
    );
  }

  async delete(id: string): Promise<boolean> {
    return (await this.sql.run(`DELETE FROM ${this.table} WHERE ${this.idColumn} = $1`, [id])) > 0;
  }
}

export interface Store {
  readonly sql: SqlClient;
  isInitialized(): Promise<boolean>;
  initialize(now: number): Promise<void>;
  sourceServers: DocTable<SourceServerRecord> & {
    insertWithIdentity(rec: SourceServerRecord, identity: string, createdAt: number): Promise<boolean>;
    findByIdentity(identity: string): Promise<SourceServerRecord | undefined>;
  };
  templates: DocTable<ReplicationConfigurationTemplate>;
  jobs: DocTable<Job>;
  replicators: DocTable<ReplicatorRecord> & {
    /** Inserts or refreshes the replicator called `rec.name`; returns the stored record. */
    upsertByName(rec: ReplicatorRecord, now: number): Promise<ReplicatorRecord>;
  };
  jobLogItems(jobID: string): Promise<JobLog[]>;
  /** Named JSON values the running server writes for other readers of the database (settings.ts). */
  settings: {
    get(name: string): Promise<unknown>;
    put(name: string, value: unknown, now: number): Promise<void>;
  };
  accessKeys: {
    insert(row: AccessKeyRow): Promise<void>;
    get(accessKeyId: string): Promise<AccessKeyRow | undefined>;
    list(): Promise<AccessKeyRow[]>;
    delete(accessKeyId: string): Promise<boolean>;
    deleteForServer(sourceServerID: string): Promise<number>;
  };
  close(): Promise<void>;
}

function toKey(r: Record<string, unknown>): AccessKeyRow {
  const row: AccessKeyRow = {
    accessKeyId: String(r.access_key_id),
    scope: String(r.scope) as AccessKeyScope,
    description: String(r.description),
    secretCiphertext: String(r.secret_ciphertext),
    createdAt: Number(r.created_at),
  };
  if (r.source_server_id !== null && r.source_server_id !== undefined)
    row.sourceServerID = String(r.source_server_id);
  return row;
}

/** Opens the store on `sql`, applying any pending migrations first. */
export async function createStore(sql: SqlClient): Promise<Store> {
  await migrate(sql);
  const servers = new DocTable<SourceServerRecord>(sql, "source_servers", "source_server_id");
  const sourceServers = Object.assign(servers, {
    /** Inserts a new server; false when another one already has this identity. */
    async insertWithIdentity(rec: SourceServerRecord, identity: string, createdAt: number): Promise<boolean> {
      try {
        await servers.insert(rec.sourceServerID, rec, createdAt, { identity });
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },
    async findByIdentity(identity: string): Promise<SourceServerRecord | undefined> {
      const rows = await sql.query<{ doc: string }>(`SELECT doc FROM source_servers WHERE identity = $1`, [
        identity,
      ]);
      return rows[0] ? (JSON.parse(rows[0].doc) as SourceServerRecord) : undefined;
    },
  });
  const replicatorTable = new DocTable<ReplicatorRecord>(sql, "replicators", "replicator_id");
  const replicators = Object.assign(replicatorTable, {
    async upsertByName(rec: ReplicatorRecord, now: number): Promise<ReplicatorRecord> {
      // Bounded: a lost insert race means the other row is there on the next read.
      for (let attempt = 0; attempt < 5; attempt++) {
        const rows = await sql.query<{ replicator_id: string }>(
          `SELECT replicator_id FROM replicators WHERE name = $1`,
          [rec.name],
        );
        const id = rows[0]?.replicator_id;
        if (id) {
          const next = await replicatorTable.update(id, (old) => ({
            ...rec,
            replicatorId: old.replicatorId,
            registeredAt: old.registeredAt,
          }));
          if (next) return next;
          continue;
        }
        try {
          await replicatorTable.insert(rec.replicatorId, rec, now, { name: rec.name });
          return rec;
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
        }
      }
      throw new FerryError(
        "STORE_CONTENTION",
        `Could not register replicator ${rec.name}: concurrent registrations kept racing. Retry.`,
        { kind: "internal" },
      );
    },
  });
  const cols = "access_key_id, scope, source_server_id, description, secret_ciphertext, created_at";
  return {
    sql,
    async isInitialized() {
      return (await sql.query(`SELECT id FROM service_state WHERE id = 1`)).length === 1;
    },
    async initialize(now) {
      const exists = await sql.query(`SELECT id FROM service_state WHERE id = 1`);
      if (exists.length) return;
      try {
        await sql.run(`INSERT INTO service_state (id, initialized_at) VALUES (1, $1)`, [now]);
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    },
    sourceServers,
    templates: new DocTable<ReplicationConfigurationTemplate>(sql, "replication_templates", "template_id"),
    jobs: new DocTable<Job>(sql, "jobs", "job_id"),
    replicators,
    async jobLogItems(jobID) {
      const rows = await sql.query<{ doc: string }>(
        `SELECT doc FROM job_log_items WHERE job_id = $1 ORDER BY seq`,
        [jobID],
      );
      return rows.map((r) => JSON.parse(r.doc) as JobLog);
    },
    settings: {
      async get(name) {
        const rows = await sql.query<{ value: string }>(`SELECT value FROM settings WHERE name = $1`, [name]);
        return rows[0] ? (JSON.parse(rows[0].value) as unknown) : undefined;
      },
      async put(name, value, now) {
        await sql.run(
          `INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
          [name, JSON.stringify(value), now],
        );
      },
    },
    accessKeys: {
      async insert(row) {
        await sql.run(`INSERT INTO access_keys (${cols}) VALUES ($1, $2, $3, $4, $5, $6)`, [
          row.accessKeyId,
          row.scope,
          row.sourceServerID ?? null,
          row.description,
          row.secretCiphertext,
          row.createdAt,
        ]);
      },
      async get(id) {
        const rows = await sql.query(`SELECT ${cols} FROM access_keys WHERE access_key_id = $1`, [id]);
        return rows[0] ? toKey(rows[0]) : undefined;
      },
      async list() {
        return (await sql.query(`SELECT ${cols} FROM access_keys ORDER BY created_at, access_key_id`)).map(
          toKey,
        );
      },
      async delete(id) {
        return (await sql.run(`DELETE FROM access_keys WHERE access_key_id = $1`, [id])) > 0;
      },
      async deleteForServer(sourceServerID) {
        return sql.run(`DELETE FROM access_keys WHERE source_server_id = $1`, [sourceServerID]);
      },
    },
    close: () => sql.close(),
  };
}
