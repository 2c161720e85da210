/**
 * Who may write a staging volume, and when a server's volumes are released
 * (FinalizeCutover, DisconnectFromService). Two small records in the store,
 * no clocks compared across hosts:
 *
 *   volumes/<server>/<disk>/lease.json   the live writer's lease: rewritten (with a
 *                                        higher `renewals`) at least every ttl/2 while it writes
 *   volumes/<server>/released.json       the release marker: written before any volume of
 *                                        the server is removed, completed after
 *
 * A writer renews (puts its lease, then reads the marker) before any store
 * mutation when its last renewal is older than ttl/2, and stops for good when
 * it finds the marker. A releaser puts the marker, then removes a volume only
 * when its lease is absent or has not changed for a whole ttl. Each side
 * writes before it reads the other's record, so at least one of them sees the
 * other: either the writer stops, or the releaser waits. See
 * docs/staging-store.md, "Releasing a server's volumes".
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { FerryError } from "../lib/errors.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { checkName } from "./volume-head.ts";

/** A writer that has not renewed for this long is gone (crashed, or frozen). */
export const LEASE_TTL_MS = 20_000;
/** A released server's agent is refused this long after the release (an agent told to uninstall may still reconnect). */
export const RELEASE_HOLD_MS = 60 * 60 * 1000;

export interface LeaseRecord {
  owner: string;
  host: string;
  pid: number;
  renewals: number;
  ttlMs: number;
  renewedAt: string;
}

export interface ReleaseMarker {
  sourceServerId: string;
  requestedAt: string;
  reason: string;
  /** Set once every volume of the server is removed. */
  completedAt?: string;
  /** Writers stay refused this long after `completedAt`; then a new replication may start. */
  holdMs: number;
}

export function leaseKey(prefix: string): string {
  return `${prefix}lease.json`;
}

export function releaseMarkerKey(sourceServerId: string): string {
  return `volumes/${checkName("sourceServerId", sourceServerId)}/released.json`;
}

export async function readReleaseMarker(
  store: ObjectStore,
  sourceServerId: string,
): Promise<ReleaseMarker | undefined> {
  const raw = await store.getMeta(releaseMarkerKey(sourceServerId));
  if (!raw) return undefined;
  try {
    return JSON.parse(raw.toString("utf8")) as ReleaseMarker;
  } catch (err) {
    // Unreadable: treat it as a release in progress (refusing is the safe side).
    return {
      sourceServerId,
      requestedAt: "",
      reason: `unreadable marker: ${(err as Error).message}`,
      holdMs: 0,
    };
  }
}

/** Whether a marker still keeps writers out (a release in progress, or completed less than `holdMs` ago). */
export function markerHolds(m: ReleaseMarker, now: number): boolean {
  if (!m.completedAt) return true;
  return now < Date.parse(m.completedAt) + m.holdMs;
}

export function releasedError(m: ReleaseMarker, prefix: string): FerryError {
  const when = m.completedAt ? `released at ${m.completedAt}` : `being released since ${m.requestedAt}`;
  return new FerryError(
    "VOLUME_RELEASED",
    `source server ${m.sourceServerId} was taken out of replication (${m.reason}); its staging volumes are ${when} and ${prefix} takes no more writes. Reinstall the agent to replicate this server again${m.completedAt ? ` after ${new Date(Date.parse(m.completedAt) + m.holdMs).toISOString()}` : ""}.`,
    { details: { sourceServerId: m.sourceServerId, prefix } },
  );
}

/** The writer's side: one per writable StagingVolume. */
export class WriterLease {
  private readonly store: ObjectStore;
  private readonly prefix: string;
  private readonly sourceServerId: string;
  readonly ttlMs: number;
  private readonly owner = randomBytes(8).toString("hex");
  private renewals = 0;
  /** performance.now() of the last renewal that found no marker. */
  private renewedAt = -Infinity;
  private renewing: Promise<void> | undefined;
  private released: FerryError | undefined;

  constructor(store: ObjectStore, prefix: string, sourceServerId: string, ttlMs = LEASE_TTL_MS) {
    this.store = store;
    this.prefix = prefix;
    this.sourceServerId = sourceServerId;
    this.ttlMs = ttlMs;
  }

  /**
   * Takes the lease when the volume is opened. A marker whose hold has
   * passed is removed (the server replicates again); any other marker refuses.
   */
  async acquire(): Promise<void> {
    const before = await readReleaseMarker(this.store, this.sourceServerId);
    if (before && markerHolds(before, Date.now())) throw releasedError(before, this.prefix);
    if (before) await this.store.delete(releaseMarkerKey(this.sourceServerId));
    await this.renew();
  }

  /** Called before every store mutation: renews when the last renewal is older than ttl/2. */
  async ensure(): Promise<void> {
    if (this.released) throw this.released;
    if (performance.now() - this.renewedAt < this.ttlMs / 2) return;
    this.renewing ??= this.renew().finally(() => (this.renewing = undefined));
    await this.renewing;
  }

  private async renew(): Promise<void> {
    if (this.released) throw this.released;
    const started = performance.now();
    const lease: LeaseRecord = {
      owner: this.owner,
      host: hostname(),
      pid: process.pid,
      renewals: ++this.renewals,
      ttlMs: this.ttlMs,
      renewedAt: new Date().toISOString(),
    };
    await this.store.putMeta(leaseKey(this.prefix), Buffer.from(JSON.stringify(lease)));
    const marker = await readReleaseMarker(this.store, this.sourceServerId);
    if (marker && markerHolds(marker, Date.now())) {
      this.released = releasedError(marker, this.prefix);
      await this.store.delete(leaseKey(this.prefix)).catch(() => {});
      throw this.released;
    }
    this.renewedAt = started;
  }

  /** Gives the lease up (the volume closes). */
  async drop(): Promise<void> {
    if (this.released) return;
    this.released = new FerryError("VOLUME_CLOSED", `volume ${this.prefix} is closed`, { kind: "internal" });
    const raw = await this.store.getMeta(leaseKey(this.prefix)).catch(() => undefined);
    if (!raw) return;
    try {
      if ((JSON.parse(raw.toString("utf8")) as LeaseRecord).owner !== this.owner) return;
    } catch {
      // unreadable: ours to replace anyway
    }
    await this.store.delete(leaseKey(this.prefix)).catch(() => {});
  }
}
