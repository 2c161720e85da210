/**
 * `ferry replicator verify`: checks a staging volume's head two ways.
 * 1. Integrity: re-hash the stored data and compare with the hashes recorded
 *    when it was written (detects damage on the replicator's disk).
 * 2. Equality: compare the recorded hashes with a hash list of the source disk
 *    (detects any difference without moving the disk's data).
 */
import { FerryError } from "../lib/errors.ts";
import {
  HASH_BYTES,
  ZERO_BLOCK_HASH,
  blake3Of,
  blockCount,
  recordedHash,
  type HashList,
} from "../wire/index.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";
import type { ObjectStore } from "./store/object-store.ts";
import { StagingVolume } from "./volume.ts";

export interface VerifyReport {
  sourceServerId: string;
  diskId: string;
  diskSize: number;
  hashBlockSize: number;
  blocks: number;
  /** Blocks whose stored data no longer matches its recorded hash. */
  damagedBlocks: number;
  /** Blocks that differ from the source (when a hash list was given). */
  differentBlocks: number | null;
  /** First few offsets of damaged or different blocks. */
  firstBadOffsets: number[];
  ok: boolean;
}

/** Verifies the head of a volume in a staging store (a data directory path means the local store there). */
export async function verifyVolume(
  dataDirOrStore: string | ObjectStore,
  sourceServerId: string,
  diskId: string,
  source?: HashList,
): Promise<VerifyReport> {
  const store =
    typeof dataDirOrStore === "string"
      ? new LocalDirectoryStore(dataDirOrStore, { readOnly: true })
      : dataDirOrStore;
  const vol = await StagingVolume.open(store, sourceServerId, diskId, { readOnly: true });
  try {
    const { diskSize, hashBlockSize, generationId } = vol.meta;
    if (!generationId) {
      throw new FerryError(
        "VOLUME_NOT_FOUND",
        `no staging volume for ${sourceServerId}/${diskId} in ${store.location}`,
      );
    }
    if (source && (source.diskSize !== diskSize || source.hashBlockSize !== hashBlockSize)) {
      throw new FerryError(
        "VERIFY_GEOMETRY_MISMATCH",
        `the source is ${source.diskSize} bytes in ${source.hashBlockSize}-byte blocks, the staging volume ${diskSize} in ${hashBlockSize}-byte blocks`,
      );
    }
    const blocks = blockCount(diskSize, hashBlockSize);
    let damaged = 0;
    let different = 0;
    const firstBad: number[] = [];
    const perRead = Math.max(1, Math.floor((4 * 1024 * 1024) / hashBlockSize));
    for (let first = 0; first < blocks; first += perRead) {
      const count = Math.min(perRead, blocks - first);
      const data = await vol.readRange(
        first * hashBlockSize,
        Math.min(count * hashBlockSize, diskSize - first * hashBlockSize),
      );
      const recorded = await vol.readHashes(first, count);
      for (let i = 0; i < count; i++) {
        const block = data.subarray(i * hashBlockSize, (i + 1) * hashBlockSize);
        const rec = recorded.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
        const actual = recordedHash(block);
        // A zero block may have been recorded either way.
        const intact = actual.equals(rec) || (actual.equals(ZERO_BLOCK_HASH) && rec.equals(blake3Of(block)));
        const offset = (first + i) * hashBlockSize;
        if (!intact) {
          damaged++;
          if (firstBad.length < 16) firstBad.push(offset);
        }
        if (source) {
          const want = source.hashes.subarray((first + i) * HASH_BYTES, (first + i + 1) * HASH_BYTES);
          if (!want.equals(actual)) {
            different++;
            if (intact && firstBad.length < 16) firstBad.push(offset);
          }
        }
      }
    }
    return {
      sourceServerId,
      diskId,
      diskSize,
      hashBlockSize,
      blocks,
      damagedBlocks: damaged,
      differentBlocks: source ? different : null,
      firstBadOffsets: firstBad,
      ok: damaged === 0 && different === 0,
    };
  } finally {
    await vol.close();
  }
}

/**
 * Writes the head of a volume as a sparse raw image (zeros are holes), as
 * recorded: for tests, tools and `ferry replicator export`. Safe while the
 * replicator runs (it reads the durable, committed state only).
 */
export async function exportHead(
  dataDirOrStore: string | ObjectStore,
  sourceServerId: string,
  diskId: string,
  outPath: string,
): Promise<{ diskSize: number }> {
  const { open } = await import("node:fs/promises");
  const store =
    typeof dataDirOrStore === "string"
      ? new LocalDirectoryStore(dataDirOrStore, { readOnly: true })
      : dataDirOrStore;
  const vol = await StagingVolume.open(store, sourceServerId, diskId, { readOnly: true });
  const out = await open(outPath, "w", 0o600);
  try {
    const { diskSize, hashBlockSize } = vol.meta;
    const step = Math.max(hashBlockSize, 4 * 1024 * 1024);
    for (let at = 0; at < diskSize; at += step) {
      const n = Math.min(step, diskSize - at);
      const first = at / hashBlockSize;
      let allZero = true;
      for (let b = first; b < first + Math.ceil(n / hashBlockSize); b++) {
        if (!vol.isZeroBlock(b)) {
          allZero = false;
          break;
        }
      }
      if (allZero) continue;
      const data = await vol.readRange(at, n);
      await out.write(data, 0, data.length, at);
    }
    await out.truncate(diskSize);
    return { diskSize };
  } finally {
    await out.close();
    await vol.close();
  }
}
