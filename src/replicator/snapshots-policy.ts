/**
 * The point-in-time policy, in the shape of AWS DRS's PITPolicyRule: every
 * `interval` `units` a snapshot is due, and it is kept `retentionDuration`
 * `units`. A snapshot expires once every rule that wanted it has let it go;
 * the newest snapshot of a disk never expires (a launch always has one).
 */
import type { PitPolicyRule } from "./snapshots-policy-file.ts";

export type { PitPolicyRule } from "./snapshots-policy-file.ts";
export type PitPolicy = PitPolicyRule[];

/** Every 10 minutes kept 60 minutes, hourly kept 24 hours, daily kept 7 days (DRS's default). */
export const DEFAULT_PIT_POLICY: PitPolicy = [
  { ruleID: 1, units: "MINUTE", interval: 10, retentionDuration: 60, enabled: true },
  { ruleID: 2, units: "HOUR", interval: 1, retentionDuration: 24, enabled: true },
  { ruleID: 3, units: "DAY", interval: 1, retentionDuration: 7, enabled: true },
];

const UNIT_MS = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 } as const;

export function intervalMs(r: PitPolicyRule): number {
  return r.interval * UNIT_MS[r.units];
}

export function retentionMs(r: PitPolicyRule): number {
  return r.retentionDuration * UNIT_MS[r.units];
}

/** What the policy needs to know of a snapshot. */
export interface PolicySnapshot {
  snapshotId: string;
  createdAt: string;
  ruleIds?: string[];
}

/** Rules due at `now` given the disk's existing snapshots (a rule is due when its last snapshot is `interval` old). */
export function dueRules(
  policy: PitPolicy,
  snapshots: readonly PolicySnapshot[],
  now: Date,
): PitPolicyRule[] {
  return policy.filter((r) => {
    if (!r.enabled) return false;
    let last = -Infinity;
    for (const s of snapshots) {
      if (s.ruleIds?.includes(String(r.ruleID))) last = Math.max(last, Date.parse(s.createdAt));
    }
    // A little slack: barriers come at the agent's pace, not exactly on the minute.
    return now.getTime() - last >= intervalMs(r) - Math.min(30_000, intervalMs(r) / 10);
  });
}

/**
 * Snapshots that have expired at `now`. A snapshot wanted by rules lives as
 * long as the longest of their retentions; one taken for another reason (a
 * launch's request, the end of the initial sync) as long as the policy's
 * longest retention. The newest snapshot is always kept.
 */
export function expiredSnapshots<T extends PolicySnapshot>(
  policy: PitPolicy,
  snapshots: readonly T[],
  now: Date,
): T[] {
  const enabled = policy.filter((r) => r.enabled);
  const longest = Math.max(0, ...enabled.map(retentionMs));
  const newest = snapshots.reduce<T | undefined>(
    (a, s) => (a === undefined || Date.parse(s.createdAt) >= Date.parse(a.createdAt) ? s : a),
    undefined,
  );
  return snapshots.filter((s) => {
    if (s === newest) return false;
    const rules = enabled.filter((r) => s.ruleIds?.includes(String(r.ruleID)));
    // With no rule at all, nothing but a rule's own snapshots ever expires.
    const keep = rules.length > 0 ? Math.max(...rules.map(retentionMs)) : longest > 0 ? longest : Infinity;
    return now.getTime() - Date.parse(s.createdAt) > keep;
  });
}

/**
 * Reads a policy file (`ferry replicator run --pit-policy <json>`): a list of
 * rules, or `{ "pitPolicy": [...] }` as DRS writes it. Its schema is loaded
 * here only: a replicator without a policy file never loads zod for it.
 */
export async function loadPitPolicy(path: string): Promise<PitPolicy> {
  return (await import("./snapshots-policy-file.ts")).readPitPolicyFile(path);
}
