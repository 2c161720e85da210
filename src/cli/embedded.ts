/**
 * The embedded default, as a function: the control plane and one local
 * replicator that joins it (the `local` provisioner), and a launcher that
 * launches from the replicator's staging store (instances in `<dataDir>/launch`). Used by `ferry up` and
 * `ferry demo`. The first start creates the CA, the certificates, an operator
 * key and the replicator's key, kept in the data directory (secrets in
 * `credentials.json`, mode 0600).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { systemErrorCode } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ControlPlane } from "../control/index.ts";
import type { SnapshotCatalog } from "../model/staging.ts";

export interface EmbeddedOptions {
  dataDir: string;
  listen: { host: string; port: number };
  replicatorListen: { host: string; port: number };
  region: string;
  databaseUrl?: string;
  certNames?: string[];
  /** How often agents report. @default 10 */
  reportIntervalSeconds?: number;
  log: Logger;
}

export interface Embedded {
  endpoint: string;
  region: string;
  caFile: string;
  caFingerprint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** True when this start created the operator key. */
  createdKey: boolean;
  credentialsFile: string;
  replicator: string;
  replicatorFingerprint: string;
  replicatorId: string;
  /** Where the local replicator keeps staging volumes. */
  replicatorDataDir: string;
  /** The control plane in this process (for access keys and the like). */
  controlPlane: ControlPlane;
  close(): Promise<void>;
}

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** The local replicator's own key (scope replicator). */
  replicator?: { accessKeyId: string; secretAccessKey: string };
}

export async function startEmbedded(o: EmbeddedOptions): Promise<Embedded> {
  const { startServer } = await import("../control/index.ts");
  const { loadOrCreateIdentity } = await import("../replicator/identity.ts");
  const { startReplicator } = await import("../replicator/server.ts");
  const { joinControlPlane } = await import("../replicator/join.ts");
  const { createLauncher } = await import("../launch/index.ts");
  const names = o.certNames ?? [];
  // Launches read the local replicator's staging store, which starts after the control plane.
  let catalog: SnapshotCatalog | undefined;
  let releaseStaging: ((sourceServerID: string) => Promise<void>) | undefined;
  let reinstateStaging: ((sourceServerID: string) => Promise<void>) | undefined;
  let stagingReleaser: { close(): Promise<void> } | undefined;
  const launcher = createLauncher({
    dataDir: join(o.dataDir, "launch"),
    catalog: () => catalog,
    releaseStaging: async (id) => releaseStaging?.(id),
    reinstateStaging: async (id) => reinstateStaging?.(id),
    logger: o.log.child({ component: "launch" }),
  });
  const server = await startServer({
    dataDir: join(o.dataDir, "server"),
    host: o.listen.host,
    port: o.listen.port,
    region: o.region,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
    ...(o.reportIntervalSeconds ? { reportIntervalSeconds: o.reportIntervalSeconds } : {}),
    certNames: [...new Set(["localhost", "127.0.0.1", o.listen.host, ...names])],
    logger: o.log.child({ component: "server" }),
    launcher,
  });
  let replicator: Awaited<ReturnType<typeof startReplicator>> | undefined;
  let membership: Awaited<ReturnType<typeof joinControlPlane>> | undefined;
  try {
    const credentialsFile = join(o.dataDir, "credentials.json");
    let creds: Credentials | undefined;
    let created = false;
    let createdKey = false;
    try {
      creds = JSON.parse(await readFile(credentialsFile, "utf8")) as Credentials;
    } catch (err) {
      if (systemErrorCode(err) !== "ENOENT") throw err;
    }
    // Keys may have been deleted with `ferry access-key delete`: make new ones then.
    const keys = await server.controlPlane.accessKeys.list();
    if (!creds || !keys.some((k) => k.accessKeyId === creds!.accessKeyId)) {
      const k = await server.controlPlane.accessKeys.create("operator", "created by ferry up");
      creds = { ...creds, accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
      created = createdKey = true;
    }
    if (!creds.replicator || !keys.some((k) => k.accessKeyId === creds!.replicator!.accessKeyId)) {
      const k = await server.controlPlane.accessKeys.create("replicator", "the local replicator of ferry up");
      creds.replicator = { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey };
      created = true;
    }
    if (created) await writeFile(credentialsFile, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });

    // The local replicator joins the control plane like any replicator host, so agents get
    // its address and fingerprint from their assignment and it trusts only certified agents.
    const replicatorDataDir = join(o.dataDir, "replicator");
    const id = await loadOrCreateIdentity(replicatorDataDir, {
      altNames: [o.replicatorListen.host, ...names],
    });
    // As a joined `ferry replicator run`: certificates say who an agent is, the control plane's
    // heartbeat answers say whether its server may still replicate (not after a disconnect).
    const { ControlPlaneAuthorization, guardStore } = await import("../replicator/authorize.ts");
    const { LocalDirectoryStore } = await import("../replicator/store/local-directory-store.ts");
    const authorization = new ControlPlaneAuthorization({ log: o.log.child({ component: "replicator" }) });
    // Sessions write through the guard; releases (the control plane's own writes) do not.
    const stagingStore = new LocalDirectoryStore(replicatorDataDir);
    replicator = await startReplicator({
      dataDir: replicatorDataDir,
      store: guardStore(stagingStore, (sid) => authorization.writeRefusal(sid)),
      host: o.replicatorListen.host,
      port: o.replicatorListen.port,
      tls: id,
      authorize: authorization.authorizer(),
      requireClientCertificates: true,
      log: o.log.child({ component: "replicator" }),
    });
    catalog = replicator.catalog;
    // FinalizeCutover / DisconnectFromService: the server's staging volumes go, once its live
    // session (if any) has stopped; retried in the background, resumed at the next start.
    const { createStagingReleaser } = await import("../replicator/volume-release.ts");
    const { volumeLeased } = await import("../replicator/snapshots.ts");
    const releasing = replicator;
    const releaser = createStagingReleaser({
      store: stagingStore,
      reason: "FinalizeCutover or DisconnectFromService",
      inUse: (prefix) => volumeLeased(releasing.store, prefix),
      log: o.log.child({ component: "staging-release" }),
    });
    stagingReleaser = releaser;
    const serverId = /^s-[0-9a-zA-Z]{17}$/;
    releaseStaging = async (id) => {
      if (serverId.test(id)) await releaser.release(id);
    };
    reinstateStaging = async (id) => {
      if (serverId.test(id)) await releaser.reinstate(id);
    };
    await releaser.resumePending();
    const advertised = o.replicatorListen.host === "0.0.0.0" ? "127.0.0.1" : o.replicatorListen.host;
    const local = replicator;
    membership = await joinControlPlane({
      endpoint: server.url,
      region: o.region,
      credentials: creds.replicator,
      caPem: await readFile(server.caFile, "utf8"),
      registration: () => ({
        name: "local",
        privateAddress: `${advertised}:${local.port}`,
        certFingerprint: id.fingerprint,
        stagingAreaSubnetId: "",
        lastSnapshots: local.lastSnapshots(),
        ...(authorization.digest() ? { authorizationDigest: authorization.digest() } : {}),
      }),
      onAnswer: (answer) => authorization.apply(answer.authorization, local),
      log: o.log.child({ component: "replicator" }),
    });
    const joined = membership;
    authorization.setRefresh(() => joined.refresh());
    replicator.setClientCa(membership.clientCaPem);
    const rep = replicator;
    const member = membership;
    return {
      endpoint: server.url,
      region: o.region,
      caFile: server.caFile,
      caFingerprint: server.caFingerprint,
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      createdKey,
      credentialsFile,
      replicator: `${rep.host}:${rep.port}`,
      replicatorFingerprint: id.fingerprint,
      replicatorId: member.replicatorId,
      replicatorDataDir,
      controlPlane: server.controlPlane,
      async close() {
        member.stop();
        await server.close();
        await launcher.close();
        await stagingReleaser?.close();
        await rep.close();
      },
    };
  } catch (err) {
    membership?.stop();
    await server.close();
    await launcher.close();
    await stagingReleaser?.close();
    await replicator?.close();
    throw err;
  }
}
