/**
 * The staging store's storage backends: immutable objects written atomically,
 * read by byte range, listed by prefix, deleted; plus small mutable metadata
 * records (the head record, snapshot manifests) replaced atomically.
 *
 * Keys are `/`-separated names of letters, digits, ".", "_" and "-" (no
 * empty part, no ".."), so a key can never escape a directory or a prefix.
 */
import { FerryError } from "../../lib/errors.ts";

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * An object appended to in place and made durable by `sync()` (local disks
 * only): the open log segment. Not visible to `list`/`get` until `seal()`.
 */
export interface AppendableObject {
  readonly key: string;
  /** Bytes appended so far. */
  readonly size: number;
  append(parts: readonly Buffer[]): Promise<void>;
  /** Makes every appended byte durable. */
  sync(): Promise<void>;
  /** Reads back appended bytes (recovery rebuilds its index from them). */
  read(range: ByteRange): Promise<Buffer>;
  /** Durably turns it into the immutable object `key`. */
  seal(): Promise<void>;
  close(): Promise<void>;
}

/** One sealed object opened for many ranged reads. */
export interface ObjectReader {
  /** `range.length` bytes from `range.offset`; fewer only past the end of the object. */
  read(range: ByteRange): Promise<Buffer>;
  /** Lends the bytes of `range` to `use` (fewer only past the end) and takes the memory back when it settles. */
  lend<T>(range: ByteRange, use: (bytes: Buffer) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface ObjectStore {
  /** Where the store is, for messages ("/var/lib/ferry/replicator", "s3://bucket/prefix"). */
  readonly location: string;
  /** Stores an immutable object; readers see all of it or nothing. Durable when it resolves. */
  put(key: string, body: Buffer | readonly Buffer[]): Promise<void>;
  /** The object's bytes (or a range of them). Throws FerryError OBJECT_NOT_FOUND. */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  /** Objects whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Removes an object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** Replaces a small metadata record atomically and durably. */
  putMeta(key: string, value: Buffer): Promise<void>;
  /** A metadata record, or undefined when there is none. */
  getMeta(key: string): Promise<Buffer | undefined>;
  /**
   * Opens (creating or reopening, cut to `truncateTo` bytes) the appendable
   * object that will become `key`. Only stores on a local filesystem have it;
   * others buffer and `put` whole objects.
   */
  openAppendable?(key: string, o?: { truncateTo?: number }): Promise<AppendableObject>;
  /** Keys of appendable objects not yet sealed under `prefix`. */
  listAppendable?(prefix: string): Promise<string[]>;
  /** Reads an appendable object not yet sealed (another process's open segment). OBJECT_NOT_FOUND once sealed. */
  readAppendable?(key: string, range: ByteRange): Promise<Buffer>;
  /**
   * Opens a sealed object for many ranged reads without the page cache
   * (O_DIRECT), for bulk readers such as a launch. Local stores only; others
   * use `get`. Throws OBJECT_NOT_FOUND.
   */
  openReader?(key: string): Promise<ObjectReader>;
  /** Removes an appendable object not yet sealed (unacknowledged leftovers). */
  deleteAppendable?(key: string): Promise<void>;
  /**
   * Removes a whole volume: every object, metadata record, appendable object
   * and temporary under `prefix` (a key followed by "/"; never everything).
   * Snapshot manifests go first and the head record before the segments, so
   * a reader sees snapshots vanish, never a snapshot with missing data.
   * Idempotent: removing a removed volume removes nothing. Returns how many
   * objects went.
   */
  removeVolume(prefix: string): Promise<number>;
  close(): Promise<void>;
}

const PART = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

/** Refuses keys that could escape the store (path traversal, empty parts). */
export function checkKey(key: string): string {
  const parts = key.split("/");
  if (key.length > 1024 || parts.some((p) => !PART.test(p) || p === "." || p.includes(".."))) {
    throw new FerryError(
      "INVALID_OBJECT_KEY",
      `invalid object key "${key}": use "/"-separated names of letters, digits, ".", "_" and "-"`,
      { details: { key } },
    );
  }
  return key;
}

/** A volume's prefix: a key followed by "/" (never empty: that would be the whole store). */
export function checkVolumePrefix(prefix: string): string {
  if (!prefix.endsWith("/")) {
    throw new FerryError(
      "INVALID_OBJECT_KEY",
      `invalid volume prefix "${prefix}": a volume is removed by its key followed by "/"`,
      { details: { prefix } },
    );
  }
  checkKey(prefix.slice(0, -1));
  return prefix;
}

/** When a volume's object is removed: manifests (0), then head records (1), then the rest (2). */
export function removalRank(key: string): 0 | 1 | 2 {
  return /\/snap\/[^/]+$/.test(key) ? 0 : key.endsWith("/meta.json") ? 1 : 2;
}

/** A prefix is a key followed by "/" (or empty for everything). */
export function checkPrefix(prefix: string): string {
  if (prefix === "") return prefix;
  checkKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix);
  return prefix;
}

export function notFound(location: string, key: string, cause?: unknown): FerryError {
  return new FerryError("OBJECT_NOT_FOUND", `object ${key} is not in the staging store ${location}`, {
    details: { key, location },
    ...(cause === undefined ? {} : { cause }),
  });
}
