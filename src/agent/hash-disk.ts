/** Reads a whole disk (never through a stale cache) and records the hash of every block. */
import { HASH_BYTES, blockCount, recordedHash, type HashList } from "../wire/index.ts";
import { type DirectMode, openBlockSource } from "./disk/block-source.ts";

export interface HashDiskOptions {
  /** @default 64 KiB */
  hashBlockSize?: number;
  direct?: DirectMode;
  onProgress?: (done: number, total: number) => void;
}

export async function hashDisk(path: string, options: HashDiskOptions = {}): Promise<HashList> {
  const hashBlockSize = options.hashBlockSize ?? 64 * 1024;
  const source = await openBlockSource(path, options.direct ? { direct: options.direct } : {});
  try {
    const chunk = Math.max(hashBlockSize, 1024 * 1024);
    const [a, b] = source.allocBuffers(2, chunk);
    const hashes = Buffer.alloc(blockCount(source.size, hashBlockSize) * HASH_BYTES);
    let next = source.read(a!, 0, chunk);
    let bufs = [a!, b!];
    for (let offset = 0; offset < source.size; offset += chunk) {
      const n = await next;
      const cur = bufs[0]!;
      bufs = [bufs[1]!, cur];
      // Read the next chunk while this one is hashed.
      next = offset + chunk < source.size ? source.read(bufs[0]!, offset + chunk, chunk) : Promise.resolve(0);
      for (let at = 0; at < n; at += hashBlockSize) {
        const block = cur.subarray(at, Math.min(at + hashBlockSize, n));
        recordedHash(block).copy(hashes, ((offset + at) / hashBlockSize) * HASH_BYTES);
      }
      options.onProgress?.(offset + n, source.size);
      if (n < Math.min(chunk, source.size - offset)) break;
    }
    await next;
    return { hashBlockSize, diskSize: source.size, hashes };
  } finally {
    await source.close();
  }
}
