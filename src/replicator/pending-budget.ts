/**
 * How much received, not yet written data one session may hold before its
 * socket pauses. Each session's own limit (64 MiB by default) lets one agent
 * keep the disk busy, but 32 agents at that limit could make the replicator
 * hold 2 GiB. A replicator-wide budget is shared instead among the sessions
 * that hold data at the moment (idle ones, e.g. continuous replication between
 * writes, take none): alone, a session gets its full limit; with many, an
 * equal share, never less than a floor that still holds a few large frames.
 * A session that starts holding data may briefly push the total past the
 * budget, by at most its share: the others shrink to theirs as they write.
 */

export interface PendingBudget {
  /** Bytes shared among all live sessions. */
  budgetBytes: number;
  /** The least a session gets, whatever the number of sessions. */
  floorBytes: number;
  /** The most a session gets (its own limit). */
  capBytes: number;
}

/** One session's share of the budget while `sessions` sessions hold data. */
export function pendingShare(b: PendingBudget, sessions: number): number {
  const share = Math.floor(b.budgetBytes / Math.max(1, sessions));
  return Math.min(b.capBytes, Math.max(b.floorBytes, share));
}
