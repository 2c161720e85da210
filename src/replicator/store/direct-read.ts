/**
 * Ranged reads of one sealed object with O_DIRECT, for bulk readers (a launch
 * reading a whole snapshot): no page-cache copy, no readahead fighting the
 * writes of the image being made, and no cache pollution on the replicator.
 * Measured here under load: 4 GiB read in 5.6 s direct against 18.9 s
 * through the page cache.
 *
 * O_DIRECT needs the file offset, the length and the buffer's address aligned.
 * Offsets and lengths are widened to 4 KiB. Node has no aligned allocation,
 * but a large buffer never moves: each pooled buffer's aligned start is found
 * once (a probe read at each 16-byte step; the kernel answers EINVAL at once
 * for a misaligned one). Buffers are shared memory, so a verify worker can
 * hash the blocks in place (verify-pool.ts). `lend` lends a buffer for the
 * time of a callback and takes it back: no allocation per read.
 * A filesystem without O_DIRECT (tmpfs) is read through the page cache.
 */
import { readSync } from "node:fs";
import { constants, open, type FileHandle } from "node:fs/promises";
import { systemErrorCode } from "../../lib/errors.ts";
import type { ByteRange, ObjectReader } from "./object-store.ts";

const ALIGN = 4096;
/** Pooled buffers hold reads up to this size (a launch reads 4 MiB at a time); larger reads get their own. */
const SLOT = 8 * 1024 * 1024 + 2 * ALIGN;
/** Buffers kept for reuse (8 × 8 MiB). */
const POOL_MAX = 8;

/**
 * Reused aligned buffers. Fresh memory is expensive here: first-touch page
 * faults of newly allocated buffers ran at 165 MB/s on these (loaded) VMs,
 * slower than the disk, so bulk reads recycle their buffers.
 */
const pool: Buffer[] = [];

function take(fd: number, size: number): Buffer | undefined {
  if (size <= SLOT) {
    const b = pool.pop();
    if (b) return b;
  }
  return fresh(fd, size);
}

function fresh(fd: number, size: number): Buffer | undefined {
  const raw = Buffer.from(new SharedArrayBuffer(Math.max(size, SLOT) + ALIGN));
  const start = probe(fd, raw);
  return start === undefined ? undefined : raw.subarray(start, start + Math.max(size, SLOT));
}

function give(b: Buffer): void {
  if (b.length === SLOT && pool.length < POOL_MAX) pool.push(b);
}

/** Opens `path` for direct reads (page-cache reads where the filesystem has no O_DIRECT). */
export async function openDirectReader(path: string): Promise<ObjectReader> {
  let fh: FileHandle;
  let direct = true;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (err) {
    if (systemErrorCode(err) !== "EINVAL") throw err;
    fh = await open(path, "r");
    direct = false;
  }
  const readAll = async (buf: Buffer, start: number, length: number): Promise<number> => {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
      if (bytesRead % ALIGN !== 0) break; // the end of the object
    }
    return done;
  };
  const lend = async <T>(range: ByteRange, use: (bytes: Buffer) => Promise<T>): Promise<T> => {
    if (range.length === 0) return use(Buffer.alloc(0));
    if (!direct) return use(await readPlain(fh, range));
    const start = Math.floor(range.offset / ALIGN) * ALIGN;
    const length = Math.ceil((range.offset + range.length) / ALIGN) * ALIGN - start;
    let buf = take(fh.fd, length);
    let done = 0;
    try {
      if (buf) done = await readAll(buf, start, length);
    } catch (err) {
      if (systemErrorCode(err) !== "EINVAL") throw err;
      buf = fresh(fh.fd, length); // a pooled buffer probed on another device
      if (buf) done = await readAll(buf, start, length);
    }
    if (!buf) {
      // No aligned offset (not expected on a filesystem that opened with O_DIRECT): read plainly.
      direct = false;
      await fh.close();
      fh = await open(path, "r");
      return use(await readPlain(fh, range));
    }
    try {
      const skip = range.offset - start;
      return await use(buf.subarray(skip, Math.max(skip, Math.min(skip + range.length, done))));
    } finally {
      give(buf);
    }
  };
  return {
    lend,
    read: (range) => lend(range, async (bytes) => Buffer.from(bytes)),
    close: () => fh.close(),
  };
}

/** The offset into `raw` where O_DIRECT reads are accepted (the probe crosses a page: a shorter one can pass misaligned). */
function probe(fd: number, raw: Buffer): number | undefined {
  for (let off = 0; off < ALIGN; off += 16) {
    try {
      readSync(fd, raw, off, 2 * ALIGN, 0);
      return off;
    } catch (err) {
      if (systemErrorCode(err) !== "EINVAL") throw err;
    }
  }
  return undefined;
}

async function readPlain(fh: FileHandle, range: ByteRange): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(range.length);
  let done = 0;
  while (done < range.length) {
    const { bytesRead } = await fh.read(buf, done, range.length - done, range.offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}
