/**
 * The records of a staging volume (see docs/staging-store.md): the head record
 * (`meta.json`, replaced atomically), snapshot manifests, the names a volume
 * may use, and the in-memory shape of the open segment.
 */
import { FerryError } from "../lib/errors.ts";
import type { AppendableObject } from "./store/object-store.ts";
import type { SegmentIndexBuilder } from "./store/segment-index.ts";

export interface VolumeMeta {
  sourceServerId: string;
  diskId: string;
  /** Hex of the 16-byte generation id. */
  generationId: string;
  diskSize: number;
  logicalBlockSize: number;
  hashBlockSize: number;
  /** Bytes from offset 0 durable in this generation's initial sync. */
  resumeOffset: number;
  /** Highest durable sequence number. */
  durableSeq: number;
  initialSyncComplete: boolean;
  lastBarrierId: number;
  lastConsistentAt: string | null;
  updatedAt: string;
}

/** What meta.json holds: the volume's metadata and its committed segments. */
export interface HeadRecord extends VolumeMeta {
  format: 2;
  /** Segments below this sequence belong to an older disk geometry (kept only for snapshots). */
  baseSeq: number;
  /** Highest sealed segment sequence the head covers. */
  sealedThrough: number;
  /** The open (appendable) segment and its durable length. */
  open: { seq: number; length: number } | null;
}

/** A snapshot's manifest: the segments ≤ segmentSeq (from baseSeq) are its contents. */
export interface SnapshotManifest {
  snapshotId: string;
  sourceServerId: string;
  diskId: string;
  generationId: string;
  createdAt: string;
  barrierId: number;
  reason: "policy" | "requested" | "initial-sync";
  diskSize: number;
  logicalBlockSize: number;
  blockSize: number;
  baseSeq: number;
  segmentSeq: number;
  /** Point-in-time rules that wanted this snapshot (it expires when all of theirs have). */
  ruleIds?: string[];
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Refuses names that could escape the data directory or the store prefix. */
export function checkName(kind: string, value: string): string {
  if (!ID.test(value) || value.includes("..")) {
    throw new FerryError(
      "INVALID_NAME",
      `invalid ${kind} "${value}": use letters, digits, ".", "_" and "-"`,
      {
        details: { [kind]: value },
      },
    );
  }
  return value;
}

/** The store prefix of a volume ("volumes/<server>/<disk>/"). */
export function volumePrefix(sourceServerId: string, diskId: string): string {
  return `volumes/${checkName("sourceServerId", sourceServerId)}/${checkName("diskId", diskId)}/`;
}

export interface VolumeOptions {
  /** Open to read only: no recovery writes, no deletes (another process owns the volume). @default false */
  readOnly?: boolean;
  /** Seal the open segment once it holds this many bytes. @default 1 GiB */
  segmentBytes?: number;
  /**
   * Seal the open segment once its index, kept in memory until the seal,
   * holds this many bytes (56 per 4 KiB record: 4 MiB is ~75k small writes,
   * ~290 MiB of data), so that many small writes hold little memory. @default 4 MiB
   */
  segmentIndexBytes?: number;
  /** Without appendable objects (S3): flush when this much is buffered. @default 32 MiB */
  bufferBytes?: number;
  /** A writable open's lease lapses after this long without renewal (volume-lease.ts). @default 20 s */
  leaseTtlMs?: number;
}

export interface OpenSegment {
  seq: number;
  app: AppendableObject | undefined;
  /** Buffered parts when the store has no appendable objects. */
  parts: Buffer[];
  size: number;
  /** Size recorded in the head record. */
  committed: number;
  /** The index its seal will write, built as records are appended. */
  index: SegmentIndexBuilder;
}

export function blocksOf(h: VolumeMeta): number {
  return h.diskSize > 0 ? Math.ceil(h.diskSize / h.hashBlockSize) : 0;
}

export function emptyHead(sourceServerId: string, diskId: string): HeadRecord {
  return {
    format: 2,
    sourceServerId,
    diskId,
    generationId: "",
    diskSize: 0,
    logicalBlockSize: 512,
    hashBlockSize: 65536,
    resumeOffset: 0,
    durableSeq: 0,
    initialSyncComplete: false,
    lastBarrierId: 0,
    lastConsistentAt: null,
    updatedAt: new Date().toISOString(),
    baseSeq: 1,
    sealedThrough: 0,
    open: null,
  };
}

export function parseHead(raw: Buffer, prefix: string): HeadRecord {
  try {
    const h = JSON.parse(raw.toString("utf8")) as HeadRecord;
    if (h.format !== 2) throw new Error(`format ${String(h.format)} is not 2`);
    return h;
  } catch (err) {
    throw new FerryError(
      "STAGING_META_DAMAGED",
      `cannot read ${prefix}meta.json: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
