/**
 * What the staging store offers to the rest of Ferry: point-in-time
 * snapshots of a source server's disks, listed and read back block-verified.
 * The replicator implements it (src/replicator/store); launches and
 * `ferry snapshot` consume it. Types only: the host (the CLI) wires an
 * implementation to its consumers.
 */

/** One snapshot of one replicated disk, taken at a consistency point. */
export interface SnapshotInfo {
  snapshotId: string;
  sourceServerId: string;
  diskId: string;
  /** ISO 8601, when the consistency point was recorded on the replicator. */
  createdAt: string;
  /** The agent's BARRIER id the snapshot was taken at. */
  barrierId: number;
  diskSize: number;
  logicalBlockSize: number;
  /** The granularity of stored blocks and their hashes (the hash block size). */
  blockSize: number;
  /** Why it exists: the point-in-time policy, an explicit request (a launch), or the end of the initial sync. */
  reason: "policy" | "requested" | "initial-sync";
  /** Bytes of stored block data only this snapshot keeps alive (space it would free), when known. */
  exclusiveBytes?: number;
}

/** A range of a snapshot: either stored data or known zeros. */
export interface SnapshotExtent {
  offset: number;
  length: number;
  zero: boolean;
}

/** A read-only view of one snapshot. Every block read is checked against its recorded BLAKE3 hash. */
export interface SnapshotReader {
  readonly info: SnapshotInfo;
  /**
   * The bytes at [offset, offset+length) as of the snapshot. Throws
   * FerryError SNAPSHOT_DAMAGED (with the block offset) when stored data does
   * not match its recorded hash: never wrong bytes.
   */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Like `read`, but lends the verified bytes to `use` and takes the memory
   * back when `use` settles (keep no reference past it): no allocation per
   * read, for bulk readers such as a launch. Optional; fall back to `read`.
   */
  readWith?<T>(offset: number, length: number, use: (bytes: Buffer) => Promise<T>): Promise<T>;
  /**
   * Like `read`, but into `target[0, length)`, leaving blocks of zeros
   * unwritten; resolves with the [start, end) ranges written, in order (the
   * rest of the range is zeros). A bulk reader (a launch) passes buffers in
   * shared memory so the verifying thread can copy the bytes as it checks
   * them. Optional.
   */
  readInto?(offset: number, length: number, target: Buffer): Promise<[number, number][]>;
  /** The whole disk as ordered, non-overlapping extents (zeros need not be written by a consumer). */
  extents(): AsyncIterable<SnapshotExtent>;
  close(): Promise<void>;
}

/** The snapshots of every replicated disk in one staging store. */
export interface SnapshotCatalog {
  /** Snapshots of a source server's disks, oldest first. */
  list(sourceServerId: string): Promise<SnapshotInfo[]>;
  open(sourceServerId: string, diskId: string, snapshotId: string): Promise<SnapshotReader>;
  /**
   * Asks for a snapshot of every disk of the server at its next consistency
   * point (a launch's SNAPSHOT_START). Resolves with the new snapshots, or
   * rejects with FerryError SNAPSHOT_TIMEOUT when no consistency point comes
   * within `timeoutMs` (the caller then uses the previous snapshot). Only a
   * store attached to a running replicator can take snapshots.
   */
  takeSnapshot?(sourceServerId: string, o: { timeoutMs: number }): Promise<SnapshotInfo[]>;
}
