/**
 * `createControlPlane`: the store, access keys and the HTTP app, without a
 * socket (tests call `app.request()`; `startServer` adds HTTPS).
 */
import { mkdirSync } from "node:fs";
import type { Hono } from "hono";
import type { ControlPlaneOptions, ResolvedControlPlaneOptions } from "./options.ts";
import { resolveControlPlaneOptions } from "./options.ts";
import type { Store } from "./store/store.ts";
import { createStore } from "./store/store.ts";
import { openSqlite } from "./store/sqlite.ts";
import { openPostgres } from "./store/postgres.ts";
import type { AccessKeys } from "./auth/access-keys.ts";
import { createAccessKeys } from "./auth/access-keys.ts";
import { createSecretBox, loadMasterKey } from "./auth/secret-box.ts";
import { createApp } from "./app.ts";
import { loadOrCreateDataPlaneCa } from "./auth/data-plane-ca.ts";
import { createMetrics } from "./metrics.ts";
import { resolveAgentPackageDir } from "./agent-package.ts";
import { computeDataReplicationInfo } from "../model/source-server.ts";
import { createJobRunner, loadRunnerId } from "./jobs/runner.ts";
import { startKeyRevocationSweep } from "./api/lifecycle.ts";

export interface ControlPlane {
  app: Hono<never>;
  /** The CA replicators trust for agents' client certificates (PEM). */
  dataPlaneCaPem: string;
  store: Store;
  accessKeys: AccessKeys;
  options: ResolvedControlPlaneOptions;
  close(): Promise<void>;
}

/** Opens the store (migrating it) and builds the app. */
export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const o = resolveControlPlaneOptions(options);
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const sql = o.databaseUrl ? openPostgres(o.databaseUrl) : openSqlite(o.sqlitePath);
  let store: Store;
  try {
    store = await createStore(sql);
  } catch (err) {
    await sql.close();
    throw err;
  }
  const box = createSecretBox(loadMasterKey(o.masterKeyFile, o.masterKey));
  const accessKeys = createAccessKeys(store, box, o.now);
  const stateOptions = {
    agentNotSeenAfterMs: o.agentNotSeenAfterSeconds * 1000,
    replicatorNotSeenAfterMs: o.replicatorNotSeenAfterSeconds * 1000,
  };
  const dataPlaneCa = await loadOrCreateDataPlaneCa(o.dataDir);
  const jobs = o.launcher
    ? createJobRunner({
        runnerId: loadRunnerId(o.dataDir),
        store,
        launcher: o.launcher,
        now: o.now,
        region: o.region,
        accountId: o.accountId,
        logger: o.logger,
      })
    : undefined;
  // A job the previous process left running is failed now, not left STARTED forever.
  await jobs?.recover();
  const base = {
    store,
    accessKeys,
    now: o.now,
    region: o.region,
    accountId: o.accountId,
    stateOptions,
    reportIntervalSeconds: o.reportIntervalSeconds,
    agentUninstallGraceSeconds: o.agentUninstallGraceSeconds,
    dataPlaneCa,
    ...(jobs ? { jobs } : {}),
  };
  // Keys of disconnected agents that never call again (each agent call checks its own as well).
  const sweep = startKeyRevocationSweep(
    base,
    Math.max(1, Math.min(60, o.agentUninstallGraceSeconds / 2)) * 1000,
    (err) => o.logger.warn("revoking disconnected agents' keys failed; retrying", { error: String(err) }),
  );
  const app = createApp({
    base,
    logger: o.logger,
    agentPackageDir: resolveAgentPackageDir(o.dataDir),
    metrics: createMetrics(),
    async gauges() {
      const servers = await store.sourceServers.list();
      const now = o.now();
      const stalled = servers.filter(
        (s) => computeDataReplicationInfo(s, now, stateOptions).dataReplicationState === "STALLED",
      ).length;
      return { ferry_source_servers: servers.length, ferry_source_servers_stalled: stalled };
    },
  });
  return {
    app: app as unknown as Hono<never>,
    dataPlaneCaPem: dataPlaneCa.certPem,
    store,
    accessKeys,
    options: o,
    async close() {
      await sweep.stop();
      await jobs?.close();
      await store.close();
    },
  };
}
