/**
 * Writes one snapshot of one disk to a new raw file: known-zero extents and
 * all-zero blocks stay holes, data is read through the snapshot reader (every
 * block checked against its hash) with a few reads in flight while earlier
 * ones are written. The snapshot is only read; a damaged block fails the
 * whole disk (the caller removes the file) — never wrong bytes. Each chunk
 * is copied once, into one of the image writer's aligned buffers, which it
 * writes with O_DIRECT (image-writer.ts). Readers that read into a buffer
 * (`readInto`: the staging store reads with O_DIRECT into reused buffers,
 * and its verify worker hashes each block and copies it into the image
 * buffer in one pass) leave this thread no byte to touch; readers that lend
 * their bytes (`readWith`) are copied here, and the lent buffer goes back as
 * soon as it is copied.
 */
import type { SnapshotReader } from "../model/staging.ts";
import { FerryError } from "../lib/errors.ts";
import { createImageWriter, type ImageWriterOptions } from "./image-writer.ts";

export interface MaterializeOptions {
  /** Snapshot reads in flight. @default 4 */
  readsInFlight?: number;
  /** Bytes per read. @default 4 MiB */
  chunkBytes?: number;
  /** How the image is written. @default O_DIRECT, 3 writes in flight, 4 MiB buffers */
  image?: Omit<ImageWriterOptions, "blockSize">;
}

export interface MaterializeResult {
  bytes: number;
  dataBytes: number;
  /** Whether the image was written with O_DIRECT throughout. */
  direct: boolean;
  /** Bytes written with O_DIRECT (the rest of dataBytes went through the page cache). */
  directBytes: number;
}

export async function materializeDisk(
  reader: SnapshotReader,
  path: string,
  signal?: AbortSignal,
  o: MaterializeOptions = {},
): Promise<MaterializeResult> {
  const size = reader.info.diskSize;
  const block = Math.max(4096, reader.info.blockSize);
  const chunk = Math.max(block, Math.floor((o.chunkBytes ?? 4 << 20) / block) * block);
  const readsInFlight = Math.max(1, o.readsInFlight ?? 4);
  const image = await createImageWriter(path, size, {
    bufferBytes: chunk,
    buffers: (o.image?.writesInFlight ?? 3) + readsInFlight,
    ...o.image,
    blockSize: block,
  });
  const pending: Promise<void>[] = [];
  try {
    /** Hands one verified chunk to the image writer. */
    const put = (offset: number, length: number, buf: Buffer): Promise<void> => {
      if (buf.length !== length)
        throw new FerryError(
          "SNAPSHOT_SHORT_READ",
          `Snapshot ${reader.info.snapshotId} of disk ${reader.info.diskId} returned ${buf.length} bytes at offset ${offset} instead of ${length}.`,
          { kind: "internal" },
        );
      return image.put(offset, buf);
    };
    // Into the image's buffer, or lent bytes (no allocation per chunk), when the reader can; a copy otherwise.
    const write = (offset: number, length: number): Promise<void> => {
      if (reader.readInto && length <= image.bufferBytes) {
        const readInto = reader.readInto.bind(reader);
        return image.fill(offset, length, (slot) => readInto(offset, length, slot));
      }
      return reader.readWith
        ? reader.readWith(offset, length, (buf) => put(offset, length, buf))
        : reader.read(offset, length).then((buf) => put(offset, length, buf));
    };
    for await (const ext of reader.extents()) {
      if (ext.zero) continue;
      for (let off = ext.offset; off < ext.offset + ext.length; off += chunk) {
        if (signal?.aborted) throw new FerryError("LAUNCH_CANCELLED", "The launch was cancelled.");
        const len = Math.min(chunk, ext.offset + ext.length - off);
        const p = write(off, len);
        p.catch(() => {}); // awaited below; a failure surfaces there
        pending.push(p);
        if (pending.length >= readsInFlight) await pending.shift();
      }
    }
    while (pending.length) await pending.shift();
    await image.finish();
  } finally {
    await Promise.allSettled(pending);
    await image.close();
  }
  return { bytes: size, dataBytes: image.dataBytes, direct: image.direct, directBytes: image.directBytes };
}
