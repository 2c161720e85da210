/**
 * Writes the launched raw image: verified chunks in, whole zero blocks left
 * as holes, data written with O_DIRECT from page-aligned reused buffers
 * (aligned-memory.ts) with a few writes in flight, and one fdatasync at the
 * end for the file's metadata and the disk's cache.
 *
 * Why O_DIRECT: buffered writes here cost 1–3.5 s of kernel time per GiB
 * (fresh page-cache pages are slow to fault in on these VMs; a 4 GiB launch
 * spent 4.3–13.3 s in the kernel) and leave the whole image to flush at the
 * end; O_DIRECT writes of 4 MiB from page-aligned buffers stream at the
 * disk's rate for ~0.15 s of kernel time per GiB (`dd oflag=direct`). The
 * snapshot's bytes sit after record headers in its segments, so the read
 * buffers are never aligned for a write: each chunk is copied once into an
 * aligned buffer. `fill` lends that buffer to the reader, whose verify worker
 * copies the blocks into it as it hashes them (the buffers are shared
 * memory), so the calling thread touches no byte; `put` copies here, for
 * readers that only lend their bytes.
 *
 * Where O_DIRECT is refused (at open, or EINVAL on a write: a filesystem or
 * device with other alignment rules), and for the unaligned tail of a disk,
 * the bytes go through the page cache instead.
 */
import { constants, open, type FileHandle } from "node:fs/promises";
import { systemErrorCode } from "../lib/errors.ts";
import { dataRuns } from "../wire/index.ts";
import { returnArena, takeArena, type AlignedArena } from "./aligned-memory.ts";

/** O_DIRECT offsets and lengths are kept to this multiple (any device's logical block fits). */
const ALIGN = 4096;

export interface ImageWriterOptions {
  /** Zero runs of whole blocks of this size stay holes. */
  blockSize: number;
  /** Write with O_DIRECT where the filesystem allows it. @default true */
  direct?: boolean;
  /** Writes in flight. @default 3 */
  writesInFlight?: number;
  /**
   * Buffers, each held by a chunk from the time `fill` takes it until its
   * write ends: the writes in flight plus the reads filling buffers.
   * @default writesInFlight + 4
   */
  buffers?: number;
  /** Size of a buffer; larger chunks are written in pieces of it. @default 4 MiB */
  bufferBytes?: number;
}

/** Fills `slot[0, length)` and resolves with the [start, end) ranges that hold data, in order. */
export type SlotFiller = (slot: Buffer) => Promise<[number, number][]>;

export interface ImageWriter {
  /** Whether data is being written with O_DIRECT (false after a fallback). */
  readonly direct: boolean;
  /** Bytes written so far (zero blocks left as holes are not counted). */
  readonly dataBytes: number;
  /** Of those, bytes written with O_DIRECT. */
  readonly directBytes: number;
  /** Size of the buffers `fill` lends. */
  readonly bufferBytes: number;
  /**
   * Takes the verified bytes at `offset`. Resolves once `bytes` may be reused
   * (copied to an aligned buffer, or written); throws the first failed write.
   */
  put(offset: number, bytes: Buffer): Promise<void>;
  /**
   * Lends a buffer (page-aligned, in shared memory where the runtime allows)
   * to `filler` for the `length` bytes at `offset` (at most `bufferBytes`),
   * then writes the ranges it reports. Resolves once the filler is done and
   * the write is queued; throws the filler's error or the first failed write.
   */
  fill(offset: number, length: number, filler: SlotFiller): Promise<void>;
  /** Waits for every write, sets the file's size (a trailing zero run stays a hole), then syncs it (data and metadata). */
  finish(): Promise<void>;
  /** Waits for the writes in flight, whatever their outcome, and closes the file. */
  close(): Promise<void>;
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** A counting gate: at most `n` holders at once. */
function createGate(n: number): { enter(): Promise<void>; leave(): void } {
  let free = n;
  const waiting: (() => void)[] = [];
  return {
    enter: () => (free > 0 ? (free--, Promise.resolve()) : new Promise<void>((r) => waiting.push(r))),
    leave: () => {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}

/**
 * Creates `path` (it must not exist) and returns its writer; `finish` makes it
 * a sparse file of `size` bytes. The file stays short until then: data lands
 * as writes past its end, which ext4 takes with O_DIRECT faster than writes
 * into a hole (4 GiB `dd oflag=direct`: 5.5 s extending vs 6.0–6.8 s into a
 * sized sparse file).
 */
export async function createImageWriter(
  path: string,
  size: number,
  o: ImageWriterOptions,
): Promise<ImageWriter> {
  const block = Math.max(1, o.blockSize);
  const bufferBytes = o.bufferBytes ?? 4 << 20;
  const writesInFlight = Math.max(1, o.writesInFlight ?? 3);
  const bufferCount = Math.max(writesInFlight, o.buffers ?? writesInFlight + 4);
  const plain = await open(path, "wx", 0o600);
  let directFh: FileHandle | undefined;
  let arena: AlignedArena | undefined;
  try {
    if (o.direct !== false) arena = takeArena(bufferCount, bufferBytes);
    if (arena) directFh = await openDirect(path);
  } catch (err) {
    if (arena) returnArena(arena);
    await plain.close();
    throw err;
  }
  if (arena && !directFh) {
    returnArena(arena);
    arena = undefined;
  }

  /** Aligned buffers, or (through the page cache) shared ones made when `fill` first needs them. */
  let free: Buffer[] | undefined = arena ? [...arena.slots] : undefined;
  const waiting: ((slot: Buffer) => void)[] = [];
  const gate = createGate(writesInFlight);
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let direct = directFh !== undefined;
  let dataBytes = 0;
  let directBytes = 0;
  let closed = false;

  const takeSlot = (): Promise<Buffer> => {
    free ??= Array.from({ length: bufferCount }, () => Buffer.from(new SharedArrayBuffer(bufferBytes)));
    const slot = free.pop();
    return slot ? Promise.resolve(slot) : new Promise((resolve) => waiting.push(resolve));
  };
  const giveSlot = (slot: Buffer): void => {
    const next = waiting.shift();
    if (next) next(slot);
    else free!.push(slot);
  };

  /** One run at `position` from a buffer: O_DIRECT for its aligned part, the page cache for the rest. */
  const writeRun = async (slot: Buffer, start: number, end: number, position: number): Promise<void> => {
    let at = start;
    if (direct && directFh && position % ALIGN === 0 && start % ALIGN === 0) {
      const aligned = Math.floor((end - start) / ALIGN) * ALIGN;
      try {
        // O_DIRECT may write less (a full disk); what is left is retried below through the page cache.
        while (at < start + aligned) {
          const { bytesWritten } = await directFh.write(
            slot,
            at,
            start + aligned - at,
            position + at - start,
          );
          at += bytesWritten;
          directBytes += bytesWritten;
          if (bytesWritten === 0 || bytesWritten % ALIGN !== 0) break;
        }
      } catch (err) {
        if (systemErrorCode(err) !== "EINVAL") throw err;
        direct = false; // this file or device wants other alignment: the page cache from now on
      }
    }
    if (at < end) await writeAll(plain, slot.subarray(at, end), position + at - start);
  };

  const check = (): void => {
    if (failure !== undefined) throw failure;
    if (closed) throw new Error("the image writer is closed");
  };

  /** Writes `runs` of `slot` at `offset` in the background (a few at once) and then gives the slot back. */
  const submit = (slot: Buffer, offset: number, runs: [number, number][]): void => {
    const p = (async () => {
      await gate.enter();
      try {
        for (const [a, b] of runs) {
          if (failure !== undefined) break;
          await writeRun(slot, a, b, offset + a);
          dataBytes += b - a;
        }
      } catch (err) {
        failure ??= err;
      } finally {
        gate.leave();
        giveSlot(slot);
      }
    })();
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  /** A free buffer, once one is; throws (after giving it back) if the writer failed or closed meanwhile. */
  const slotFor = async (): Promise<Buffer> => {
    const slot = await takeSlot();
    if (failure !== undefined || closed) {
      giveSlot(slot);
      check();
    }
    return slot;
  };

  return {
    get direct() {
      return direct;
    },
    get dataBytes() {
      return dataBytes;
    },
    get directBytes() {
      return directBytes;
    },
    bufferBytes,
    async put(offset, bytes) {
      check();
      if (!arena) {
        for (const [a, b] of dataRuns(bytes, block)) {
          await writeAll(plain, bytes.subarray(a, b), offset + a);
          dataBytes += b - a;
        }
        return;
      }
      // Pieces of one buffer's size, cut on block boundaries so holes stay whole blocks.
      const piece = Math.max(block, Math.floor(bufferBytes / block) * block);
      for (let from = 0; from < bytes.length; from += piece) {
        const part = bytes.subarray(from, Math.min(bytes.length, from + piece));
        const runs = dataRuns(part, block);
        if (!runs.length) continue;
        if (part.length > bufferBytes) {
          for (const [a, b] of runs) await writeAll(plain, part.subarray(a, b), offset + from + a);
          for (const [a, b] of runs) dataBytes += b - a;
          continue;
        }
        const slot = await slotFor();
        for (const [a, b] of runs) part.copy(slot, a, a, b);
        submit(slot, offset + from, runs);
      }
    },
    async fill(offset, length, filler) {
      check();
      if (length > bufferBytes)
        throw new Error(`a ${length}-byte chunk does not fit the image writer's ${bufferBytes}-byte buffers`);
      const slot = await slotFor();
      let runs: [number, number][];
      try {
        runs = await filler(slot.subarray(0, length));
      } catch (err) {
        giveSlot(slot);
        throw err;
      }
      if (runs.length) submit(slot, offset, runs);
      else giveSlot(slot);
    },
    async finish() {
      while (inFlight.size) await Promise.all([...inFlight]);
      check();
      await plain.truncate(size);
      await plain.datasync();
    },
    async close() {
      if (closed) return;
      closed = true;
      while (inFlight.size) await Promise.all([...inFlight]);
      await directFh?.close().catch(() => {});
      await plain.close();
      if (arena) returnArena(arena);
    },
  };
}

/** A second handle with O_DIRECT, or undefined where the filesystem refuses it. */
async function openDirect(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_WRONLY | constants.O_DIRECT);
  } catch (err) {
    if (systemErrorCode(err) === "EINVAL") return undefined;
    throw err;
  }
}
