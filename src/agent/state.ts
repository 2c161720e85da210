/**
 * The agent's durable memory of each disk's replication: which generation it
 * belongs to, so that a restart resumes instead of starting over. Written
 * atomically (temp file, fsync, rename).
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { FerryError, systemErrorCode } from "../lib/errors.ts";

export interface DiskState {
  sourceServerId: string;
  diskId: string;
  sourcePath: string;
  generationId: string;
  diskSize: number;
  hashBlockSize: number;
  initialSyncComplete: boolean;
  updatedAt: string;
}

function statePath(stateDir: string, sourceServerId: string, diskId: string): string {
  return join(stateDir, sourceServerId, `${diskId}.json`);
}

export async function loadDiskState(
  stateDir: string,
  sourceServerId: string,
  diskId: string,
): Promise<DiskState | undefined> {
  const path = statePath(stateDir, sourceServerId, diskId);
  try {
    return JSON.parse(await readFile(path, "utf8")) as DiskState;
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return undefined;
    throw new FerryError(
      "AGENT_STATE_DAMAGED",
      `cannot read ${path}: ${(err as Error).message}; remove it to start a new sync`,
      {
        cause: err,
      },
    );
  }
}

export async function saveDiskState(stateDir: string, state: DiskState): Promise<void> {
  const path = statePath(stateDir, state.sourceServerId, state.diskId);
  await mkdir(join(stateDir, state.sourceServerId), { recursive: true });
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 2));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
