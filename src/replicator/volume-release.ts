/**
 * Releasing a source server's staging volumes (FinalizeCutover,
 * DisconnectFromService): the release marker first, then each volume removed
 * once no writer holds it (volume-lease.ts explains why that is safe), then
 * the marker completed. Idempotent; a release interrupted by a crash or a
 * restart is found again by `pendingReleases` and finished.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../lib/errors.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import type { ObjectStore } from "./store/object-store.ts";
import {
  LEASE_TTL_MS,
  RELEASE_HOLD_MS,
  leaseKey,
  readReleaseMarker,
  releaseMarkerKey,
  type ReleaseMarker,
} from "./volume-lease.ts";
import { checkName, volumePrefix } from "./volume-head.ts";

export interface ReleaseOptions {
  /** Why (in the marker and in a refused agent's error). @default "released" */
  reason?: string;
  /** How long a writer's lease may stay unchanged before it counts as gone. @default LEASE_TTL_MS */
  ttlMs?: number;
  /** Give up (VOLUME_IN_USE) when a volume is still in use after this long. @default 2 × ttlMs + 5 s */
  maxWaitMs?: number;
  /** @default 250 ms */
  pollMs?: number;
  /** Writers are refused this long after the release completes. @default RELEASE_HOLD_MS (1 h) */
  holdMs?: number;
  /** In-process readers of a volume (a launch reading a snapshot): the removal waits for them too. */
  inUse?: (prefix: string) => boolean;
  signal?: AbortSignal;
  log?: Logger;
}

export interface ReleaseResult {
  sourceServerId: string;
  disks: string[];
  removedObjects: number;
}

/** The disk ids with any object under `volumes/<server>/` (also volumes with no head left). */
async function volumesOf(store: ObjectStore, sourceServerId: string): Promise<string[]> {
  const prefix = `volumes/${checkName("sourceServerId", sourceServerId)}/`;
  const disks = new Set<string>();
  for (const o of await store.list(prefix)) {
    const rest = o.key.slice(prefix.length);
    const slash = rest.indexOf("/");
    if (slash > 0) disks.add(rest.slice(0, slash));
  }
  return [...disks].sort();
}

/** Waits until no writer holds the volume: its lease absent, or unchanged for a whole ttl (its writer is gone). */
async function waitForWriters(store: ObjectStore, prefix: string, o: ReleaseOptions): Promise<void> {
  const ttl = o.ttlMs ?? LEASE_TTL_MS;
  const maxWait = o.maxWaitMs ?? 2 * ttl + 5000;
  const poll = o.pollMs ?? 250;
  const start = performance.now();
  let last = (await store.getMeta(leaseKey(prefix)))?.toString("utf8");
  let since = performance.now();
  for (;;) {
    const readers = o.inUse?.(prefix) ?? false;
    if (!readers && last === undefined) return;
    if (!readers && performance.now() - since >= ttl) {
      o.log?.warn("removing a volume whose writer's lease lapsed", { prefix, lease: last });
      return;
    }
    if (performance.now() - start >= maxWait) {
      throw new FerryError(
        "VOLUME_IN_USE",
        `staging volume ${prefix} of ${store.location} is still ${readers ? "being read by a launch" : "written by a live replicator session"} after ${Math.round(maxWait / 1000)} s; the release marker stays and the removal is retried`,
        { details: { prefix, lease: last ?? null } },
      );
    }
    await sleep(poll, undefined, o.signal ? { signal: o.signal } : {});
    const now = (await store.getMeta(leaseKey(prefix)))?.toString("utf8");
    if (now !== last) {
      last = now;
      since = performance.now();
    }
  }
}

/** Releases every staging volume of a source server: one attempt, bounded by `maxWaitMs` per volume. */
export async function releaseServerVolumes(
  store: ObjectStore,
  sourceServerId: string,
  o: ReleaseOptions = {},
): Promise<ReleaseResult> {
  const log = o.log ?? silentLogger;
  let marker = await readReleaseMarker(store, sourceServerId);
  if (!marker || marker.completedAt) {
    marker = {
      sourceServerId,
      requestedAt: new Date().toISOString(),
      reason: o.reason ?? "released",
      holdMs: o.holdMs ?? RELEASE_HOLD_MS,
    };
    await store.putMeta(releaseMarkerKey(sourceServerId), Buffer.from(JSON.stringify(marker, null, 2)));
  }
  const disks = await volumesOf(store, sourceServerId);
  let removedObjects = 0;
  for (const diskId of disks) {
    const prefix = volumePrefix(sourceServerId, diskId);
    await waitForWriters(store, prefix, o);
    removedObjects += await store.removeVolume(prefix);
  }
  const done: ReleaseMarker = { ...marker, completedAt: new Date().toISOString() };
  await store.putMeta(releaseMarkerKey(sourceServerId), Buffer.from(JSON.stringify(done, null, 2)));
  log.info("staging volumes released", { sourceServerId, disks, removedObjects });
  return { sourceServerId, disks, removedObjects };
}

/**
 * A released server registered again (its agent reinstalled): the completed release's hold ends
 * now rather than an hour after the release, so the new agent replicates at once. A release
 * still in progress is left alone (its writer must still stop); the hold then applies.
 */
export async function reinstateServer(
  store: ObjectStore,
  sourceServerId: string,
): Promise<"reinstated" | "not-released" | "release-in-progress"> {
  const marker = await readReleaseMarker(store, sourceServerId);
  if (!marker) return "not-released";
  if (!marker.completedAt) return "release-in-progress";
  await store.delete(releaseMarkerKey(sourceServerId));
  return "reinstated";
}

/** Source servers whose release was requested and has not completed (interrupted, or deferred by a live writer). */
export async function pendingReleases(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  for (const o of await store.list("volumes/")) {
    const m = /^volumes\/([^/]+)\/released\.json$/.exec(o.key);
    if (!m) continue;
    const marker = await readReleaseMarker(store, m[1]!);
    if (marker && !marker.completedAt) out.push(m[1]!);
  }
  return out;
}

export interface StagingReleaserOptions extends Omit<ReleaseOptions, "signal"> {
  store: ObjectStore;
  /** A release that could not finish is tried again after this long. @default 30 s */
  retryMs?: number;
  /** Tries per release before it waits for the next start (`resumePending`). @default 20 */
  attempts?: number;
  /** How long `reinstate` waits for this host's release in progress to complete. @default 10 s */
  reinstateWaitMs?: number;
}

export interface StagingReleaser {
  /** Releases a server's volumes; resolves when done, rejects after the first failed attempt (later attempts go on in the background). */
  release(sourceServerId: string, reason?: string): Promise<ReleaseResult>;
  /** Finishes releases a previous process left unfinished (in the background). */
  resumePending(): Promise<string[]>;
  /**
   * A released server registered again: lifts the completed release's hold (`reinstateServer`).
   * A release this host is still running is waited for (up to `reinstateWaitMs`); if it is still
   * running then, its hold is lifted the moment it completes.
   */
  reinstate(sourceServerId: string): Promise<void>;
  /** Stops waiting and retrying. */
  close(): Promise<void>;
}

/** The host's releaser: one attempt now, retries in the background, resumption at start. */
export function createStagingReleaser(o: StagingReleaserOptions): StagingReleaser {
  const stop = new AbortController();
  const log = o.log ?? silentLogger;
  const tasks = new Set<Promise<unknown>>();
  const attempts = o.attempts ?? 20;
  const track = <T>(p: Promise<T>): Promise<T> => {
    tasks.add(p);
    void p.finally(() => tasks.delete(p)).catch(() => {});
    return p;
  };
  /** This host's release attempt in progress per server, and servers to reinstate once theirs completes. */
  const attempting = new Map<string, Promise<ReleaseResult>>();
  const reinstateAfter = new Set<string>();
  const lift = async (id: string) => {
    const r = await reinstateServer(o.store, id);
    if (r !== "release-in-progress") reinstateAfter.delete(id);
    if (r === "reinstated")
      log.info("a released server registered again: it may replicate", { sourceServerId: id });
    return r;
  };
  const once = (id: string, reason?: string) => {
    const attempt = (async () => {
      const result = await releaseServerVolumes(o.store, id, {
        ...o,
        ...(reason ? { reason } : {}),
        signal: stop.signal,
        log,
      });
      if (reinstateAfter.has(id)) await lift(id);
      return result;
    })();
    attempting.set(id, attempt);
    void attempt.finally(() => attempting.get(id) === attempt && attempting.delete(id)).catch(() => {});
    return attempt;
  };
  const retry = async (id: string, reason: string | undefined, from: number) => {
    for (let n = from; n <= attempts && !stop.signal.aborted; n++) {
      try {
        await sleep(o.retryMs ?? 30_000, undefined, { signal: stop.signal });
        await once(id, reason);
        return;
      } catch (err) {
        if (stop.signal.aborted) return;
        log.warn("staging release attempt failed", { sourceServerId: id, attempt: n, error: String(err) });
      }
    }
  };
  return {
    async release(id, reason) {
      reinstateAfter.delete(id); // a new release: an earlier registration does not lift its hold
      try {
        return await track(once(id, reason));
      } catch (err) {
        if (!stop.signal.aborted) void track(retry(id, reason, 2));
        throw err;
      }
    },
    async reinstate(id) {
      if ((await lift(id)) !== "release-in-progress") return;
      // Registered again while a release is still running (the agent's old session has not let go
      // yet): lifted as soon as that release completes, so the reinstalled agent is not held an hour.
      reinstateAfter.add(id);
      const running = attempting.get(id);
      if (running) {
        const wait = new AbortController();
        await Promise.race([
          running.catch(() => {}),
          sleep(o.reinstateWaitMs ?? 10_000, undefined, { signal: wait.signal }).catch(() => {}),
        ]);
        wait.abort();
      }
      if ((await lift(id)) === "release-in-progress")
        log.warn(
          "a server registered again while its staging release is still in progress: its agent is refused until the release completes, and may replicate from then on if this host completes it (else an hour after)",
          { sourceServerId: id },
        );
    },
    async resumePending() {
      const ids = await pendingReleases(o.store);
      for (const id of ids) {
        void track(
          once(id).catch((err: unknown) => {
            if (stop.signal.aborted) return;
            log.warn("could not finish an interrupted staging release", {
              sourceServerId: id,
              error: String(err),
            });
            return retry(id, undefined, 2);
          }),
        );
      }
      return ids;
    },
    async close() {
      stop.abort();
      await Promise.allSettled([...tasks]);
    },
  };
}
