/**
 * What a data-plane session needs from its replicator (limits, store,
 * authorization, shared memory and workers) and the events it reports.
 */
import type { X509Certificate } from "node:crypto";
import type { Logger } from "../lib/log.ts";
import type { HelloFrame } from "../wire/index.ts";
import type { FramePool } from "./frame-pool.ts";
import type { PayloadChecker } from "./payload-checker.ts";
import type { Session } from "./session.ts";
import type { ObjectStore } from "./store/object-store.ts";
import type { StagingVolume } from "./volume.ts";

/** What the session asks at a consistency point: whether to take a snapshot now, and what then. */
export interface SnapshotHook {
  /** Called at each CONSISTENT barrier once the writes before it are durable. */
  atConsistencyPoint(
    volume: StagingVolume,
    point: { barrierId: number; initialSyncComplete: boolean },
  ): Promise<void>;
}

export interface SessionLimits {
  maxDataLength: number;
  /** Bytes received but not yet written before the socket is paused. */
  maxPendingBytes: number;
  /** Flush at least every this many written bytes. */
  flushBytes: number;
  /** Flush at least this often (ms) while writes arrive, so a steady trickle is acknowledged promptly. */
  flushMs: number;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  helloTimeoutMs: number;
}

/** What the replicator knows of the peer from TLS. */
export interface PeerInfo {
  /** The client certificate, when the agent presented one (verified against the configured CA). */
  certificate?: X509Certificate;
  remoteAddress?: string;
}

/** Decides whether a HELLO may proceed; throws a FerryError to refuse. */
export type Authorize = (hello: HelloFrame, peer: PeerInfo) => Promise<void>;

export interface SessionHost {
  dataDir: string;
  /** The staging store volumes live in. */
  store: ObjectStore;
  /** Where the connection's decoder took large frames from; they are given back once written. */
  frames?: FramePool;
  /** Where payloads are decompressed and verified. @default the event loop */
  payloads?: PayloadChecker;
  /**
   * Bytes this session may hold received and not yet written before its socket pauses, now
   * (the replicator shares a budget among its sessions). @default limits.maxPendingBytes
   */
  pendingLimit?(): number;
  /** Tells the replicator whether this session now holds received, unwritten data (its budget is shared among those that do). */
  holdsPending?(session: Session, holds: boolean): void;
  snapshots?: SnapshotHook;
  limits: SessionLimits;
  authorize: Authorize;
  log: Logger;
  /** Registers the session for its disk, ending any older session of the same disk first. */
  claim(key: string, session: Session): Promise<void>;
  release(key: string, session: Session): void;
  onEvent?(event: SessionEvent): void;
}

export type SessionEvent =
  | { type: "hello"; sourceServerId: string; diskId: string; mode: "NEW" | "RESUME"; resumeOffset: number }
  | { type: "durable"; sourceServerId: string; diskId: string; seq: number; resumeOffset: number }
  | { type: "barrier"; sourceServerId: string; diskId: string; barrierId: number; flags: number }
  | {
      type: "snapshot";
      sourceServerId: string;
      diskId: string;
      snapshotId: string;
      createdAt: string;
      barrierId: number;
    }
  | { type: "closed"; sourceServerId: string; diskId: string; dataBytesReceived: number; error?: string };
