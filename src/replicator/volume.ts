/**
 * A staging volume: the replica of one source disk on the replicator.
 *
 *   <dataDir>/volumes/<sourceServerId>/<diskId>/
 *     data.img     sparse raw image, the disk's bytes at their offsets
 *     hashes.bin   one 32-byte BLAKE3 per hash block, at index offset/hashBlockSize;
 *                  32 zero bytes mean "zero block" (never a real digest)
 *     meta.json    generation, size, durable point; replaced atomically
 *
 * Durability: data and hashes are fdatasync'ed before meta.json records the
 * new durable point, and only then is anything acknowledged to the agent.
 */
import { constants, mkdir, open, readFile, rename, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { FerryError, systemErrorCode } from "../lib/errors.ts";
import { HASH_BYTES, ZERO_BLOCK_HASH } from "../wire/index.ts";

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

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Refuses names that could escape the data directory. */
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

export function volumeDir(dataDir: string, sourceServerId: string, diskId: string): string {
  return join(dataDir, "volumes", checkName("sourceServerId", sourceServerId), checkName("diskId", diskId));
}

const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

export class StagingVolume {
  readonly dir: string;
  meta: VolumeMeta;
  private readonly data: FileHandle;
  private readonly hashes: FileHandle;
  /** Highest byte offset written in this generation (writes past it onto a fresh file need no zeroing). */
  private highWater: number;

  private constructor(
    dir: string,
    meta: VolumeMeta,
    data: FileHandle,
    hashes: FileHandle,
    highWater: number,
  ) {
    this.dir = dir;
    this.meta = meta;
    this.data = data;
    this.hashes = hashes;
    this.highWater = highWater;
  }

  /** Opens the volume of a disk, creating its directory and files if needed. */
  static async open(dataDir: string, sourceServerId: string, diskId: string): Promise<StagingVolume> {
    const dir = volumeDir(dataDir, sourceServerId, diskId);
    await mkdir(dir, { recursive: true });
    const meta = await readMeta(dir);
    const data = await open(join(dir, "data.img"), constants.O_RDWR | constants.O_CREAT, 0o600);
    const hashes = await open(join(dir, "hashes.bin"), constants.O_RDWR | constants.O_CREAT, 0o600);
    const empty: VolumeMeta = {
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
    };
    // Unknown high water: be safe and zero explicitly.
    return new StagingVolume(dir, meta ?? empty, data, hashes, Number.MAX_SAFE_INTEGER);
  }

  /** Starts a new generation: the old contents are discarded and the files sized for the disk. */
  async startGeneration(g: {
    generationId: string;
    diskSize: number;
    logicalBlockSize: number;
    hashBlockSize: number;
  }): Promise<void> {
    await this.guard("truncate", async () => {
      await this.data.truncate(0);
      await this.data.truncate(g.diskSize);
      await this.hashes.truncate(0);
      await this.hashes.truncate(Math.ceil(g.diskSize / g.hashBlockSize) * HASH_BYTES);
    });
    this.highWater = 0;
    this.meta = {
      ...this.meta,
      ...g,
      resumeOffset: 0,
      durableSeq: 0,
      initialSyncComplete: false,
      lastBarrierId: 0,
      lastConsistentAt: null,
    };
    await this.flush();
  }

  /** Writes verified data and its per-block hashes. */
  async writeData(offset: number, data: Buffer, hashes: Buffer): Promise<void> {
    this.checkRange(offset, data.length);
    await this.guard("write", async () => {
      await writeFully(this.data, data, offset);
      await writeFully(this.hashes, hashes, (offset / this.meta.hashBlockSize) * HASH_BYTES);
    });
    this.highWater = Math.max(this.highWater, offset + data.length);
  }

  /** Makes a range read as zeros. On a fresh generation, bytes never written already are. */
  async writeZero(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length);
    const end = offset + length;
    const zeroFrom = Math.min(end, Math.max(offset, 0));
    const needEnd = Math.min(end, this.highWater);
    await this.guard("write", async () => {
      for (let at = zeroFrom; at < needEnd; at += ZERO_CHUNK.length) {
        await writeFully(this.data, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, needEnd - at)), at);
      }
      const first = offset / this.meta.hashBlockSize;
      const blocks = Math.ceil(length / this.meta.hashBlockSize);
      if (needEnd > zeroFrom) {
        const zeros = Buffer.alloc(Math.min(blocks, 32768) * HASH_BYTES, ZERO_BLOCK_HASH[0]);
        for (let b = 0; b < blocks; b += zeros.length / HASH_BYTES) {
          const n = Math.min(zeros.length / HASH_BYTES, blocks - b);
          await writeFully(this.hashes, zeros.subarray(0, n * HASH_BYTES), (first + b) * HASH_BYTES);
        }
      }
    });
  }

  private checkRange(offset: number, length: number): void {
    const { hashBlockSize, diskSize } = this.meta;
    if (offset % hashBlockSize !== 0 || offset + length > diskSize || length <= 0) {
      throw new FerryError(
        "BAD_RANGE",
        `range ${offset}+${length} is not block-aligned within the ${diskSize}-byte disk`,
        { details: { offset, length, diskSize, hashBlockSize } },
      );
    }
  }

  /** Makes everything written so far durable, then records `update` in meta.json. */
  async flush(update: Partial<VolumeMeta> = {}): Promise<void> {
    await this.guard("flush", async () => {
      await this.data.datasync();
      await this.hashes.datasync();
      this.meta = { ...this.meta, ...update, updatedAt: new Date().toISOString() };
      const tmp = join(this.dir, "meta.json.tmp");
      const fh = await open(tmp, "w");
      try {
        await fh.writeFile(JSON.stringify(this.meta, null, 2));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, "meta.json"));
      const dirHandle = await open(this.dir, "r");
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    });
  }

  async readRange(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.data.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  }

  /** The recorded hashes of `count` blocks from block index `first`. */
  async readHashes(first: number, count: number): Promise<Buffer> {
    const buf = Buffer.alloc(count * HASH_BYTES);
    await this.hashes.read(buf, 0, buf.length, first * HASH_BYTES);
    return buf;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.data.close(), this.hashes.close()]);
  }

  private async guard(op: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      const code = systemErrorCode(err);
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new FerryError(
          "STAGING_DISK_FULL",
          `the replicator's staging disk is full (${op} in ${this.dir}); free space or move the data directory, then reconnect — nothing unacknowledged was kept`,
          { details: { dir: this.dir, op }, cause: err },
        );
      }
      throw new FerryError(
        "STAGING_IO_ERROR",
        `staging volume ${op} failed in ${this.dir}: ${(err as Error).message}`,
        {
          details: { dir: this.dir, op, errno: code },
          cause: err,
        },
      );
    }
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

async function readMeta(dir: string): Promise<VolumeMeta | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as VolumeMeta;
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return undefined;
    throw new FerryError(
      "STAGING_META_DAMAGED",
      `cannot read ${join(dir, "meta.json")}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
