/** Job records and their log items in the store: MGN's `Job` and `JobLog` shapes. */
import type { Store } from "../store/store.ts";
import type { Job, ParticipatingServer } from "../../model/mgn-shapes.gen.ts";
import type { LaunchLogEntry } from "../../model/launch.ts";
import { isoDateTime } from "../../model/duration.ts";

/** Appends one log item to a job. A job's items are written by one runner at a time, in order. */
export async function appendJobLog(
  store: Store,
  jobID: string,
  now: number,
  sourceServerID: string | undefined,
  entry: LaunchLogEntry,
): Promise<void> {
  const eventData: Record<string, string> = {};
  if (sourceServerID) eventData.sourceServerID = sourceServerID;
  if (entry.targetInstanceID) eventData.targetInstanceID = entry.targetInstanceID;
  if (entry.rawError) eventData.rawError = entry.rawError.slice(0, 65_000);
  if (entry.details) eventData.details = entry.details.slice(0, 65_000);
  const doc = { logDateTime: isoDateTime(now), event: entry.event, eventData };
  const rows = await store.sql.query<{ n: number | null }>(
    `SELECT MAX(seq) AS n FROM job_log_items WHERE job_id = $1`,
    [jobID],
  );
  const seq = Number(rows[0]?.n ?? 0) + 1;
  await store.sql.run(`INSERT INTO job_log_items (job_id, seq, doc) VALUES ($1, $2, $3)`, [
    jobID,
    seq,
    JSON.stringify(doc),
  ]);
}

export async function deleteJobLog(store: Store, jobID: string): Promise<void> {
  await store.sql.run(`DELETE FROM job_log_items WHERE job_id = $1`, [jobID]);
}

/** The job with one participating server's entry changed. */
export function withServer(
  job: Job,
  sourceServerID: string,
  change: (p: ParticipatingServer) => ParticipatingServer,
): Job {
  return {
    ...job,
    participatingServers: (job.participatingServers ?? []).map((p) =>
      p.sourceServerID === sourceServerID ? change({ ...p }) : p,
    ),
  };
}
