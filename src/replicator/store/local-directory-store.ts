/**
 * The embedded backend: objects are files under a root directory. A put is
 * write to a temporary name + fsync + rename + fsync of the directory, so a
 * crash leaves the old state or the new one, never half an object.
 */
import { constants, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { FerryError, systemErrorCode } from "../../lib/errors.ts";
import {
  checkKey,
  checkPrefix,
  checkVolumePrefix,
  notFound,
  type AppendableObject,
  type ByteRange,
  type ObjectInfo,
  type ObjectReader,
  type ObjectStore,
} from "./object-store.ts";
import { openDirectReader } from "./direct-read.ts";

const OPEN_SUFFIX = ".open";
const TMP_MARK = ".tmp-";
/** Volumes being removed are moved here first (a hidden name no key can take). */
const REMOVING_DIR = ".removing";

export interface LocalDirectoryStoreOptions {
  /** Refuse every write (a store opened by another process to read snapshots). @default false */
  readOnly?: boolean;
}

export class LocalDirectoryStore implements ObjectStore {
  readonly location: string;
  private readonly root: string;
  private readonly readOnly: boolean;

  constructor(root: string, o: LocalDirectoryStoreOptions = {}) {
    this.root = root;
    this.location = root;
    this.readOnly = o.readOnly ?? false;
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  private writable(key: string): void {
    if (this.readOnly) {
      throw new FerryError(
        "STORE_READ_ONLY",
        `the staging store ${this.root} is open read-only (writing ${key})`,
        {
          kind: "internal",
        },
      );
    }
  }

  async put(key: string, body: Buffer | readonly Buffer[]): Promise<void> {
    this.writable(key);
    const target = this.path(key);
    await io(this.root, "put", key, async () => {
      const tmp = `${target}${TMP_MARK}${randomBytes(6).toString("hex")}`;
      // The directory is there but for a key's first put: a mkdir each time (every head record
      // a flush commits) was one more thread-pool round trip per acknowledgement.
      const fh = await open(tmp, "w", 0o600).catch(async (err: unknown) => {
        if (systemErrorCode(err) !== "ENOENT") throw err;
        await mkdir(dirname(target), { recursive: true });
        return open(tmp, "w", 0o600);
      });
      try {
        await fh.writev(Buffer.isBuffer(body) ? [body] : [...body]);
        await fh.datasync();
      } catch (err) {
        await fh.close();
        await unlink(tmp).catch(() => {});
        throw err;
      }
      await fh.close();
      await rename(tmp, target);
      await syncDir(dirname(target));
    });
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const p = this.path(key);
    let fh: FileHandle;
    try {
      fh = await open(p, "r");
    } catch (err) {
      if (systemErrorCode(err) === "ENOENT") throw notFound(this.root, key, err);
      throw ioError(this.root, "get", key, err);
    }
    try {
      const offset = range?.offset ?? 0;
      const length = range?.length ?? (await fh.stat()).size - offset;
      return await readFully(fh, offset, length, () => notFound(this.root, `${key}@${offset}+${length}`));
    } finally {
      await fh.close();
    }
  }

  async openReader(key: string): Promise<ObjectReader> {
    try {
      return await openDirectReader(this.path(key));
    } catch (err) {
      if (systemErrorCode(err) === "ENOENT") throw notFound(this.root, key, err);
      throw ioError(this.root, "get", key, err);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    checkPrefix(prefix);
    const out: ObjectInfo[] = [];
    const slash = prefix.lastIndexOf("/");
    const baseDir = slash < 0 ? "" : prefix.slice(0, slash);
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, rel), { withFileTypes: true });
      } catch (err) {
        if (systemErrorCode(err) === "ENOENT" || systemErrorCode(err) === "ENOTDIR") return;
        throw ioError(this.root, "list", prefix, err);
      }
      for (const e of entries) {
        const key = rel === "" ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) {
          if (e.name.startsWith(".")) continue; // volumes being removed
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(key);
        } else if (e.isFile() && key.startsWith(prefix) && !isHidden(e.name)) {
          const s = await stat(join(this.root, key)).catch(() => undefined);
          if (s) out.push({ key, size: s.size });
        }
      }
    };
    await walk(baseDir);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    this.writable(key);
    await io(this.root, "delete", key, async () => {
      await rm(this.path(key), { force: true });
    });
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    await this.put(key, value);
  }

  async getMeta(key: string): Promise<Buffer | undefined> {
    try {
      return await this.get(key);
    } catch (err) {
      if (err instanceof FerryError && err.code === "OBJECT_NOT_FOUND") return undefined;
      throw err;
    }
  }

  async openAppendable(key: string, o: { truncateTo?: number } = {}): Promise<AppendableObject> {
    this.writable(key);
    const target = this.path(key);
    return io(this.root, "open", key, async () => {
      await mkdir(dirname(target), { recursive: true });
      const fh = await open(`${target}${OPEN_SUFFIX}`, constants.O_RDWR | constants.O_CREAT, 0o600);
      if (o.truncateTo !== undefined) await fh.truncate(o.truncateTo);
      const size = (await fh.stat()).size;
      // The directory is synced with the file's first sync, not here: a new segment is opened on
      // the append path, and a directory fsync on a busy disk held every append behind it.
      return new LocalAppendable(this.root, key, target, fh, size);
    });
  }

  async listAppendable(prefix: string): Promise<string[]> {
    checkPrefix(prefix);
    const slash = prefix.lastIndexOf("/");
    const dir = slash < 0 ? "" : prefix.slice(0, slash);
    let names: string[];
    try {
      names = await readdir(join(this.root, dir));
    } catch (err) {
      if (systemErrorCode(err) === "ENOENT") return [];
      throw ioError(this.root, "list", prefix, err);
    }
    return names
      .filter((n) => n.endsWith(OPEN_SUFFIX))
      .map((n) => (dir === "" ? "" : `${dir}/`) + n.slice(0, -OPEN_SUFFIX.length))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }

  async readAppendable(key: string, range: ByteRange): Promise<Buffer> {
    let fh: FileHandle;
    try {
      fh = await open(`${this.path(key)}${OPEN_SUFFIX}`, "r");
    } catch (err) {
      if (systemErrorCode(err) === "ENOENT") throw notFound(this.root, `${key}${OPEN_SUFFIX}`, err);
      throw ioError(this.root, "get", key, err);
    }
    try {
      return await readFully(fh, range.offset, range.length, () =>
        notFound(this.root, `${key}${OPEN_SUFFIX}`),
      );
    } finally {
      await fh.close();
    }
  }

  async deleteAppendable(key: string): Promise<void> {
    this.writable(key);
    await io(this.root, "delete", key, () => rm(`${this.path(key)}${OPEN_SUFFIX}`, { force: true }));
  }

  /**
   * Moves the volume's directory aside in one rename (readers and listings
   * see all of it or none of it), then deletes it. A crash in between leaves
   * it under `.removing/`, cleared by the next removal.
   */
  async removeVolume(prefix: string): Promise<number> {
    checkVolumePrefix(prefix);
    this.writable(prefix);
    const dir = join(this.root, prefix.slice(0, -1));
    const trash = join(this.root, REMOVING_DIR);
    return io(this.root, "remove", prefix, async () => {
      let removed = 0;
      await mkdir(trash, { recursive: true });
      const aside = join(trash, randomBytes(8).toString("hex"));
      try {
        await rename(dir, aside);
        await syncDir(dirname(dir));
        removed = await countFiles(aside);
      } catch (err) {
        if (systemErrorCode(err) !== "ENOENT") throw err;
      }
      // This removal's directory, and any an interrupted removal left.
      for (const name of await readdir(trash)) await rm(join(trash, name), { recursive: true, force: true });
      return removed;
    });
  }

  async close(): Promise<void> {}
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

class LocalAppendable implements AppendableObject {
  readonly key: string;
  size: number;
  private readonly root: string;
  private readonly target: string;
  private readonly fh: FileHandle;
  /** The file's directory entry is durable (synced once, with the first sync). */
  private dirSynced = false;

  constructor(root: string, key: string, target: string, fh: FileHandle, size: number) {
    this.root = root;
    this.key = key;
    this.target = target;
    this.fh = fh;
    this.size = size;
  }

  async append(parts: readonly Buffer[]): Promise<void> {
    let position = this.size;
    let total = 0;
    for (const p of parts) total += p.length;
    await io(this.root, "append", this.key, async () => {
      let list = parts.filter((p) => p.length > 0);
      while (list.length > 0) {
        const { bytesWritten } = await this.fh.writev(list, position);
        position += bytesWritten;
        list = dropBytes(list, bytesWritten);
      }
    });
    this.size += total;
  }

  /** Makes what was appended durable, and (the first time) the file's name in its directory. */
  async sync(): Promise<void> {
    await io(this.root, "sync", this.key, async () => {
      await this.fh.datasync();
      if (this.dirSynced) return;
      await syncDir(dirname(this.target));
      this.dirSynced = true;
    });
  }

  async read(range: ByteRange): Promise<Buffer> {
    return readFully(this.fh, range.offset, range.length, () => notFound(this.root, `${this.key}.open`));
  }

  async seal(): Promise<void> {
    await io(this.root, "seal", this.key, async () => {
      await this.fh.datasync();
      await rename(`${this.target}${OPEN_SUFFIX}`, this.target);
      await syncDir(dirname(this.target));
    });
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}

function isHidden(name: string): boolean {
  return name.endsWith(OPEN_SUFFIX) || name.includes(TMP_MARK);
}

function dropBytes(list: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of list) {
    if (n >= b.length) {
      n -= b.length;
      continue;
    }
    out.push(n > 0 ? b.subarray(n) : b);
    n = 0;
  }
  return out;
}

async function readFully(
  fh: FileHandle,
  offset: number,
  length: number,
  short: () => FerryError,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw short();
    done += bytesRead;
  }
  return buf;
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

async function io<T>(root: string, op: string, key: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw ioError(root, op, key, err);
  }
}

/** Turns fs errors into Ferry's staging errors (disk full is its own code: replication pauses on it). */
export function ioError(root: string, op: string, key: string, err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const code = systemErrorCode(err);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new FerryError(
      "STAGING_DISK_FULL",
      `the replicator's staging disk is full (${op} ${key} in ${root}); free space or move the data directory, then reconnect — nothing unacknowledged was kept`,
      { details: { dir: root, op, key }, cause: err },
    );
  }
  return new FerryError(
    "STAGING_IO_ERROR",
    `staging store ${op} of ${key} failed in ${root}: ${(err as Error).message}`,
    {
      details: { dir: root, op, key, errno: code },
      cause: err,
    },
  );
}
