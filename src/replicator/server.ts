/**
 * `ferry replicator`: the data-plane server. TLS 1.3 on TCP 1500 (by
 * default), one session per agent connection, one staging volume per source
 * disk under the data directory.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer, type TLSSocket } from "node:tls";
import { FerryError } from "../lib/errors.ts";
import { sourceServerCommonName } from "../model/replicator.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import { FramedConnection, type HelloFrame } from "../wire/index.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { StoreCatalog } from "./snapshots.ts";
import type { PitPolicy } from "./snapshots-policy.ts";
import { SnapshotScheduler } from "./snapshots-scheduler.ts";
import { PROBE_ALPN } from "../wire/probe.ts";
import { serveProbe } from "./probe.ts";
import { FramePool } from "./frame-pool.ts";
import { pendingShare } from "./pending-budget.ts";
import { createPayloadChecker, resolveVerifyWorkers } from "./payload-checker.ts";
import {
  type Authorize,
  Session,
  type SessionEvent,
  type SessionHost,
  type SessionLimits,
} from "./session.ts";

export interface ReplicatorOptions {
  dataDir: string;
  /** Where staging volumes live. @default a LocalDirectoryStore on `dataDir` */
  store?: ObjectStore;
  /** @default "0.0.0.0" */
  host?: string;
  /** @default 1500 */
  port?: number;
  tls: { certPem: string; keyPem: string };
  /**
   * CA (PEM) whose client certificates agents must present. With it, TLS
   * refuses agents without a certificate from this CA; `certificateAuthorizer`
   * then checks that the certificate belongs to the source server named in HELLO.
   */
  clientCa?: string;
  /** Require client certificates even before a CA is known (`setClientCa` later, after joining). */
  requireClientCertificates?: boolean;
  /** Who may replicate; see `tokenAuthorizer` and `certificateAuthorizer`. */
  authorize: Authorize;
  /** @default 5000 */
  heartbeatIntervalMs?: number;
  /** @default 20000 */
  idleTimeoutMs?: number;
  /** TLS handshake and HELLO deadline. @default 10000 */
  handshakeTimeoutMs?: number;
  /** @default 4 MiB */
  maxDataLength?: number;
  /** Received, unwritten bytes one session may hold before its socket pauses. @default 64 MiB */
  maxPendingBytes?: number;
  /**
   * Received, unwritten bytes all sessions together may hold: each session
   * holding data gets an equal share, at most `maxPendingBytes`, at least `minPendingBytes`
   * (32 agents at 64 MiB each would hold 2 GiB). @default 256 MiB
   */
  pendingBudgetBytes?: number;
  /** The least share of the budget a session gets. @default 8 MiB */
  minPendingBytes?: number;
  /**
   * Flush (and acknowledge) at least every this many written bytes. Well under
   * the agent's window (64 MiB), so acknowledgements arrive while it still sends.
   * @default 16 MiB
   */
  flushBytes?: number;
  /**
   * Flush (and acknowledge) at least this often while writes arrive, in ms: at
   * 20 MB/s, 16 MiB take 0.8 s to arrive, too long for continuous replication's lag.
   * @default 200
   */
  flushMs?: number;
  /** @default 256 */
  maxConnections?: number;
  /** Worker threads that decompress and verify large payloads (0: the event loop). @default "auto" (none on 2 cores, else cores − 1, at most 4) */
  verifyWorkers?: number | "auto";
  log?: Logger;
  onEvent?: (event: SessionEvent) => void;
  /** Point-in-time snapshot rules. @default DEFAULT_PIT_POLICY (10 min kept 1 h, hourly kept 24 h, daily kept 7 days) */
  pitPolicy?: PitPolicy;
  /** The clock of the snapshot policy (tests). @default () => new Date() */
  now?: () => Date;
}

export interface Replicator {
  host: string;
  port: number;
  /** Number of live sessions. */
  sessionCount(): number;
  /** The snapshots of the staging store, with takeSnapshot at the next consistency point. */
  catalog: StoreCatalog;
  store: ObjectStore;
  /** The newest snapshot time of each source server (for the control plane's lastSnapshotDateTime). */
  lastSnapshots(): { sourceServerID: string; lastSnapshotDateTime: string }[];
  /** Sets (or replaces) the CA of accepted client certificates. */
  setClientCa(pem: string): void;
  /** Ends every live session of a source server with `error`; returns how many. */
  endSessions(sourceServerId: string, error: FerryError): number;
  close(): Promise<void>;
}

export { sourceServerCommonName };

/**
 * Per-server credentials: the agent's certificate (already verified against
 * the control plane's CA by TLS) must name the source server whose disks it
 * sends. Agent A's certificate cannot write server B's disks.
 */
export function certificateAuthorizer(): Authorize {
  return async (hello, peer) => {
    const cert = peer.certificate;
    if (!cert) {
      throw new FerryError(
        "AUTH_FAILED",
        "the replicator requires a client certificate issued by the control plane",
      );
    }
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
    const want = sourceServerCommonName(hello.sourceServerId);
    if (cn !== want) {
      throw new FerryError(
        "AUTH_FAILED",
        `the agent's certificate is for "${cn ?? "(no CN)"}", not ${want}: an agent may only replicate its own source server's disks`,
        { details: { certificate: cn, sourceServerId: hello.sourceServerId } },
      );
    }
  };
}

/** The pairing used before the control plane issues credentials: one shared token. */
export function tokenAuthorizer(token: string): Authorize {
  const want = createHash("sha256").update(token).digest();
  return async (hello: HelloFrame) => {
    const got = createHash("sha256").update(hello.token).digest();
    if (!timingSafeEqual(want, got)) {
      throw new FerryError(
        "AUTH_FAILED",
        "the replicator refused the pairing token: give the agent the token the replicator was started with (--token)",
      );
    }
  };
}

export async function startReplicator(options: ReplicatorOptions): Promise<Replicator> {
  await mkdir(options.dataDir, { recursive: true });
  const log = options.log ?? silentLogger;
  const limits: SessionLimits = {
    maxDataLength: options.maxDataLength ?? 4 * 1024 * 1024,
    maxPendingBytes: options.maxPendingBytes ?? 64 * 1024 * 1024,
    flushBytes: options.flushBytes ?? 16 * 1024 * 1024,
    flushMs: options.flushMs ?? 200,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    idleTimeoutMs: options.idleTimeoutMs ?? 20000,
    helloTimeoutMs: options.handshakeTimeoutMs ?? 10000,
  };
  const sessions = new Set<Session>();
  const byDisk = new Map<string, Session>();
  const store = options.store ?? new LocalDirectoryStore(options.dataDir);
  const newest = new Map<string, string>();
  const noteSnapshot = (sourceServerId: string, createdAt: string) => {
    if ((newest.get(sourceServerId) ?? "") < createdAt) newest.set(sourceServerId, createdAt);
  };
  // Snapshots from before this start, from the manifests' keys (their ids begin with the time).
  void store
    .list("volumes/")
    .then((objects) => {
      for (const o of objects) {
        const m = /^volumes\/([^/]+)\/[^/]+\/snap\/snap-(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d{3})-/.exec(
          o.key,
        );
        if (m) noteSnapshot(m[1]!, `${m[2]}-${m[3]}-${m[4]}T${m[5]}:${m[6]}:${m[7]}.${m[8]}Z`);
      }
    })
    .catch((err: unknown) => log.warn("cannot list the staging store's snapshots", { error: String(err) }));
  const scheduler = new SnapshotScheduler({
    store,
    log,
    ...(options.pitPolicy ? { policy: options.pitPolicy } : {}),
    ...(options.now ? { now: options.now } : {}),
    onSnapshot: (info) => {
      noteSnapshot(info.sourceServerId, info.createdAt);
      options.onEvent?.({
        type: "snapshot",
        sourceServerId: info.sourceServerId,
        diskId: info.diskId,
        snapshotId: info.snapshotId,
        createdAt: info.createdAt,
        barrierId: info.barrierId,
      });
    },
  });
  const catalog = new StoreCatalog(store, { takeSnapshot: (id, o) => scheduler.takeSnapshot(id, o) });
  const payloads = createPayloadChecker(resolveVerifyWorkers(options.verifyWorkers));
  // Shared by the sessions: memory for large frames, reused across connections; shared memory
  // only when worker threads check payloads (copying into it is slower).
  const frames = new FramePool({ shared: payloads.workers > 0 });
  const holding = new Set<Session>();
  const budget = {
    budgetBytes: options.pendingBudgetBytes ?? 256 * 1024 * 1024,
    floorBytes: Math.min(limits.maxPendingBytes, options.minPendingBytes ?? 8 * 1024 * 1024),
    capBytes: limits.maxPendingBytes,
  };
  const host: SessionHost = {
    frames,
    payloads,
    // Shared among the sessions holding data now: idle continuous sessions do not shrink a busy one's share.
    pendingLimit: () => pendingShare(budget, holding.size),
    holdsPending(session, holds) {
      if (holds) holding.add(session);
      else holding.delete(session);
    },
    dataDir: options.dataDir,
    store,
    snapshots: scheduler,
    limits,
    authorize: options.authorize,
    log,
    async claim(key, session) {
      // A reconnecting agent takes over from its old connection, which may not have noticed yet.
      for (let i = 0; i < 100; i++) {
        const old = byDisk.get(key);
        if (!old || old === session) break;
        await old.terminate();
      }
      byDisk.set(key, session);
    },
    release(key, session) {
      if (byDisk.get(key) === session) byDisk.delete(key);
    },
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  };

  const mtls = Boolean(options.clientCa) || Boolean(options.requireClientCertificates);
  const server = createServer({
    cert: options.tls.certPem,
    key: options.tls.keyPem,
    minVersion: "TLSv1.3",
    handshakeTimeout: limits.helloTimeoutMs,
    // `ferry doctor`'s data-plane probe asks for itself by ALPN; agents negotiate none.
    ALPNCallback: ({ protocols }) => (protocols.includes(PROBE_ALPN) ? PROBE_ALPN : undefined),
    ...(mtls
      ? { requestCert: true, rejectUnauthorized: true, ...(options.clientCa ? { ca: options.clientCa } : {}) }
      : {}),
  });
  server.maxConnections = options.maxConnections ?? 256;
  server.on("secureConnection", (socket: TLSSocket) => {
    socket.setNoDelay(true);
    if (socket.alpnProtocol === PROBE_ALPN) return serveProbe(socket);
    const conn = new FramedConnection(socket, {
      maxFrameLength: limits.maxDataLength + 64 * 1024,
      allocate: (n) => frames.allocate(n),
    });
    const certificate = mtls ? socket.getPeerX509Certificate() : undefined;
    const session = new Session(conn, host, {
      ...(certificate ? { certificate } : {}),
      ...(socket.remoteAddress ? { remoteAddress: socket.remoteAddress } : {}),
    });
    sessions.add(session);
    void session.ended.then(() => sessions.delete(session));
    session.start();
  });
  server.on("tlsClientError", (err) => log.debug("TLS handshake failed", { error: err.message }));

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        const where = `${options.host ?? "0.0.0.0"}:${options.port ?? 1500}`;
        if (err.code === "EADDRINUSE") {
          reject(
            new FerryError("ADDRESS_IN_USE", `cannot listen on ${where}: the port is in use`, { cause: err }),
          );
        } else if (err.code === "EACCES") {
          reject(
            new FerryError("ADDRESS_DENIED", `cannot listen on ${where}: permission denied`, { cause: err }),
          );
        } else reject(err);
      });
      server.listen(options.port ?? 1500, options.host ?? "0.0.0.0", () => resolve());
    });
  } catch (err) {
    await payloads.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  log.info("replicator listening", { host: addr.address, port: addr.port, dataDir: options.dataDir });
  return {
    host: addr.address,
    port: addr.port,
    sessionCount: () => sessions.size,
    catalog,
    store,
    lastSnapshots: () =>
      [...newest].map(([sourceServerID, lastSnapshotDateTime]) => ({ sourceServerID, lastSnapshotDateTime })),
    endSessions(sourceServerId: string, error: FerryError) {
      let n = 0;
      for (const s of sessions) {
        if (s.sourceServerId !== sourceServerId) continue;
        s.end(error);
        n++;
      }
      return n;
    },
    setClientCa(pem: string) {
      server.setSecureContext({ cert: options.tls.certPem, key: options.tls.keyPem, ca: pem });
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) void s.terminate();
      });
      await Promise.all([...sessions].map((s) => s.ended));
      await payloads.close();
    },
  };
}
