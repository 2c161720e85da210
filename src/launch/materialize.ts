/**
 * Writes one snapshot of one disk to a new raw file: known-zero extents and
 * all-zero blocks stay holes, data is read through the snapshot reader (every
 * block checked against its hash) with a few reads in flight while earlier
 * ones are written. The snapshot is only read; a damaged block fails the
 * whole disk (the caller removes the file) — never wrong bytes. Readers that
 * lend their bytes (`readWith`: the staging store reads with O_DIRECT into
 * reused buffers and verifies on a worker thread) are written from without a
 * copy. The image is written through the page cache and synced once at the
 * end: O_DIRECT writes (tried) were 2–6× slower here than buffered ones.
 */
import { open, type FileHandle } from "node:fs/promises";
import type { SnapshotReader } from "../model/staging.ts";
import { FerryError } from "../lib/errors.ts";

const CHUNK = 4 << 20;
const IN_FLIGHT = 4;

export interface MaterializeResult {
  bytes: number;
  dataBytes: number;
}

function isZero(buf: Buffer): boolean {
  // Compare in 64 KiB slices against one zero buffer: fast, no allocation per block.
  for (let i = 0; i < buf.length; i += ZERO.length) {
    const end = Math.min(buf.length, i + ZERO.length);
    if (!buf.subarray(i, end).equals(ZERO.subarray(0, end - i))) return false;
  }
  return true;
}
const ZERO = Buffer.alloc(64 * 1024);

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

export async function materializeDisk(
  reader: SnapshotReader,
  path: string,
  signal?: AbortSignal,
): Promise<MaterializeResult> {
  const size = reader.info.diskSize;
  const block = Math.max(4096, reader.info.blockSize);
  const fh = await open(path, "wx", 0o600);
  let dataBytes = 0;
  const pending: Promise<void>[] = [];
  try {
    await fh.truncate(size);
    /** Writes one verified chunk, leaving whole zero blocks as holes. */
    const put = async (offset: number, length: number, buf: Buffer) => {
      if (buf.length !== length)
        throw new FerryError(
          "SNAPSHOT_SHORT_READ",
          `Snapshot ${reader.info.snapshotId} of disk ${reader.info.diskId} returned ${buf.length} bytes at offset ${offset} instead of ${length}.`,
          { kind: "internal" },
        );
      for (let at = 0; at < buf.length;) {
        const end = Math.min(buf.length, at + block);
        let runEnd = at;
        while (runEnd < buf.length && !isZero(buf.subarray(runEnd, Math.min(buf.length, runEnd + block))))
          runEnd = Math.min(buf.length, runEnd + block);
        if (runEnd > at) {
          await writeAll(fh, buf.subarray(at, runEnd), offset + at);
          dataBytes += runEnd - at;
          at = runEnd;
        } else at = end;
      }
    };
    // Lent bytes (no allocation per chunk) when the reader can; a copy otherwise.
    const write = (offset: number, length: number): Promise<void> =>
      reader.readWith
        ? reader.readWith(offset, length, (buf) => put(offset, length, buf))
        : reader.read(offset, length).then((buf) => put(offset, length, buf));
    for await (const ext of reader.extents()) {
      if (ext.zero) continue;
      for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
        if (signal?.aborted) throw new FerryError("LAUNCH_CANCELLED", "The launch was cancelled.");
        const len = Math.min(CHUNK, ext.offset + ext.length - off);
        const p = write(off, len);
        p.catch(() => {}); // awaited below; a failure surfaces there
        pending.push(p);
        if (pending.length >= IN_FLIGHT) await pending.shift();
      }
    }
    while (pending.length) await pending.shift();
    await fh.datasync();
  } finally {
    await Promise.allSettled(pending);
    await fh.close();
  }
  return { bytes: size, dataBytes };
}
