/**
 * Which snapshot a launch starts from: a fresh one at the next consistency
 * point when the server replicates and the store can take one (MGN's
 * SNAPSHOT_START/END); otherwise, or when none comes in time, the newest
 * existing snapshot of each disk (USING_PREVIOUS_SNAPSHOT). No snapshot at
 * all fails the launch.
 */
import type { SnapshotCatalog, SnapshotInfo } from "../model/staging.ts";
import type { LaunchRequest } from "../model/launch.ts";
import { FerryError } from "../lib/errors.ts";

function describe(snaps: SnapshotInfo[]): string {
  return snaps.map((s) => `disk ${s.diskId}: snapshot ${s.snapshotId} (${s.createdAt})`).join("; ");
}

/** The newest snapshot of every disk, ordered by disk id. */
export function newestPerDisk(all: SnapshotInfo[]): SnapshotInfo[] {
  const byDisk = new Map<string, SnapshotInfo>();
  for (const s of all) {
    const prev = byDisk.get(s.diskId);
    if (!prev || Date.parse(s.createdAt) >= Date.parse(prev.createdAt)) byDisk.set(s.diskId, s);
  }
  return [...byDisk.values()].sort((a, b) => a.diskId.localeCompare(b.diskId));
}

export async function chooseSnapshots(
  catalog: SnapshotCatalog,
  req: Pick<LaunchRequest, "sourceServerID" | "replicating" | "log">,
  timeoutMs: number,
): Promise<SnapshotInfo[]> {
  if (req.replicating && catalog.takeSnapshot) {
    await req.log({ event: "SNAPSHOT_START" });
    try {
      const fresh = await catalog.takeSnapshot(req.sourceServerID, { timeoutMs });
      if (fresh.length) {
        await req.log({ event: "SNAPSHOT_END", details: describe(fresh) });
        return [...fresh].sort((a, b) => a.diskId.localeCompare(b.diskId));
      }
      await req.log({ event: "SNAPSHOT_FAIL", rawError: "the staging store took no snapshot (no disks)" });
    } catch (err) {
      await req.log({ event: "SNAPSHOT_FAIL", rawError: err instanceof Error ? err.message : String(err) });
    }
  }
  const previous = newestPerDisk(await catalog.list(req.sourceServerID));
  if (!previous.length) {
    throw new FerryError(
      "NO_SNAPSHOT",
      `Source server ${req.sourceServerID} has no snapshot in the staging store to launch from. Wait until its initial sync has completed and a snapshot exists (ferry snapshot list), then launch again.`,
    );
  }
  await req.log({ event: "USING_PREVIOUS_SNAPSHOT", details: describe(previous) });
  return previous;
}
