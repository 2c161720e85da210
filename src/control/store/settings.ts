/**
 * The liveness thresholds the running server judges by, kept in its database
 * when it starts: `ferry source-server list|describe` and `ferry doctor
 * --server` read the database, not the server, and without these they would
 * need the server's flags repeated to say "not seen" as the API does. Several
 * servers on one PostgreSQL share one value: the last one started wins (give
 * them the same flags).
 */
import { z } from "zod";
import type { Store } from "./store.ts";

const LIVENESS = "liveness";

export const LivenessSettings = z.object({
  /** `ferry server --agent-not-seen-after`: no report for this long → STALLED, AGENT_NOT_SEEN. */
  agentNotSeenAfterSeconds: z.number().positive(),
  /** `ferry server --replicator-not-seen-after`: no heartbeat for this long → not assigned, F4 in the doctor. */
  replicatorNotSeenAfterSeconds: z.number().positive(),
});
export type LivenessSettings = z.infer<typeof LivenessSettings>;

export async function writeLivenessSettings(store: Store, s: LivenessSettings, now: number): Promise<void> {
  await store.settings.put(LIVENESS, LivenessSettings.parse(s), now);
}

/** What the running server wrote; undefined before a server of this version started on the database. */
export async function readLivenessSettings(store: Store): Promise<LivenessSettings | undefined> {
  const parsed = LivenessSettings.safeParse(await store.settings.get(LIVENESS));
  return parsed.success ? parsed.data : undefined;
}
