/**
 * When a session reaches a consistency point (a BARRIER with the CONSISTENT
 * flag, its writes durable), the scheduler decides whether a snapshot is due:
 * the end of the initial sync, a pending request (a launch's takeSnapshot),
 * or a point-in-time rule. After a snapshot it expires what the policy lets
 * go and collects the segments nothing needs any more.
 */
import { FerryError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import type { SnapshotInfo } from "../model/staging.ts";
import type { SnapshotHook } from "./session.ts";
import { collectGarbage, type GcOptions } from "./snapshots-gc.ts";
import { DEFAULT_PIT_POLICY, dueRules, expiredSnapshots, type PitPolicy } from "./snapshots-policy.ts";
import { listDisks, listManifests, snapshotInfo } from "./snapshots.ts";
import type { ObjectStore } from "./store/object-store.ts";
import type { SnapshotManifest, StagingVolume } from "./volume.ts";

export interface SnapshotSchedulerOptions {
  store: ObjectStore;
  /** @default DEFAULT_PIT_POLICY */
  policy?: PitPolicy;
  /** @default () => new Date() */
  now?: () => Date;
  log?: Logger;
  gc?: GcOptions;
  onSnapshot?: (info: SnapshotInfo) => void;
}

interface Request {
  remaining: Set<string>;
  results: SnapshotInfo[];
  resolve: (infos: SnapshotInfo[]) => void;
}

export class SnapshotScheduler implements SnapshotHook {
  private readonly store: ObjectStore;
  private readonly policy: PitPolicy;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly gc: GcOptions;
  private readonly onSnapshot: ((info: SnapshotInfo) => void) | undefined;
  private readonly requests = new Map<string, Set<Request>>();
  /** Manifests of each volume, loaded once, then kept in step. */
  private readonly manifests = new Map<string, SnapshotManifest[]>();

  constructor(o: SnapshotSchedulerOptions) {
    this.store = o.store;
    this.policy = o.policy ?? DEFAULT_PIT_POLICY;
    this.now = o.now ?? (() => new Date());
    this.log = o.log ?? silentLogger;
    this.gc = o.gc ?? {};
    this.onSnapshot = o.onSnapshot;
  }

  async atConsistencyPoint(
    vol: StagingVolume,
    point: { barrierId: number; initialSyncComplete: boolean },
  ): Promise<void> {
    const { sourceServerId, diskId, initialSyncComplete } = vol.meta;
    if (!initialSyncComplete) return; // a replica mid-sync is no point in time of the source
    const existing = await this.manifestsOf(vol);
    const now = this.now();
    const rules = dueRules(this.policy, existing, now);
    const waiting = [...(this.requests.get(sourceServerId) ?? [])].filter((r) => r.remaining.has(diskId));
    const reason: SnapshotManifest["reason"] | undefined = point.initialSyncComplete
      ? "initial-sync"
      : waiting.length > 0
        ? "requested"
        : rules.length > 0
          ? "policy"
          : undefined;
    if (!reason) return;
    const m = await vol.snapshot({
      barrierId: point.barrierId,
      reason,
      createdAt: now,
      ruleIds: rules.map((r) => String(r.ruleID)),
    });
    existing.push(m);
    const info = snapshotInfo(m);
    this.log.info("snapshot taken", { ...info });
    this.onSnapshot?.(info);
    for (const r of waiting) {
      r.remaining.delete(diskId);
      r.results.push(info);
      if (r.remaining.size === 0) r.resolve(r.results);
    }
    const expired = expiredSnapshots(this.policy, existing, now);
    if (expired.length === 0) return;
    const retained = existing.filter((s) => !expired.includes(s));
    this.manifests.set(vol.prefix, retained);
    await collectGarbage(vol, retained, expired, { ...this.gc, log: this.log });
  }

  private async manifestsOf(vol: StagingVolume): Promise<SnapshotManifest[]> {
    let list = this.manifests.get(vol.prefix);
    if (!list) {
      list = await listManifests(this.store, vol.prefix);
      this.manifests.set(vol.prefix, list);
    }
    return list;
  }

  /** Snapshots of every disk of the server at their next consistency point. */
  async takeSnapshot(sourceServerId: string, o: { timeoutMs: number }): Promise<SnapshotInfo[]> {
    const disks = await listDisks(this.store, sourceServerId);
    if (disks.length === 0) {
      throw new FerryError(
        "SNAPSHOT_TIMEOUT",
        `no disk of ${sourceServerId} replicates to this replicator, so no snapshot can be taken`,
        { details: { sourceServerId } },
      );
    }
    let set = this.requests.get(sourceServerId);
    if (!set) this.requests.set(sourceServerId, (set = new Set()));
    const requests = set;
    return new Promise<SnapshotInfo[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        requests.delete(req);
        reject(
          new FerryError(
            "SNAPSHOT_TIMEOUT",
            `no consistency point came within ${o.timeoutMs} ms for ${[...req.remaining].join(", ")} of ${sourceServerId}; the previous snapshot can be used`,
            { details: { sourceServerId, disks: [...req.remaining], timeoutMs: o.timeoutMs } },
          ),
        );
      }, o.timeoutMs);
      const req: Request = {
        remaining: new Set(disks),
        results: [],
        resolve: (infos) => {
          clearTimeout(timer);
          requests.delete(req);
          resolve(infos);
        },
      };
      requests.add(req);
    });
  }
}
