/**
 * The one pass over a run of stored blocks that a launch needs: each block's
 * BLAKE3 checked against its recorded hash and, when a target is given, the
 * block copied there right after it was hashed (it is still in the CPU's
 * cache). Blocks whose BLAKE3 is that of zeros are neither copied nor
 * reported, so the image keeps them as holes without another scan of the
 * bytes. Used on the verify workers (verify-worker.ts) and, for memory a
 * worker cannot see, on the calling thread (verify-pool.ts).
 */

/** The outcome of checking one run of blocks. */
export interface BlockCheck {
  /** Index of the first block whose hash differs, or -1. */
  bad: number;
  /**
   * [start, end) byte ranges of the data that are not all zeros, in order
   * (whole blocks, adjacent ones merged). Empty when `bad` is not -1.
   */
  runs: [number, number][];
}

const zeroHashes = new Map<number, Buffer>();

function zeroHashOf(length: number, hash: (b: Buffer) => Buffer): Buffer {
  let h = zeroHashes.get(length);
  if (!h) {
    h = hash(Buffer.alloc(length));
    if (zeroHashes.size < 16) zeroHashes.set(length, h);
  }
  return h;
}

/**
 * Checks `data` block by block against `hashes` (32 bytes per block) and
 * copies every block that is not zeros to the same offset of `target`.
 * Stops at the first bad block; the target is then partly written.
 */
export function checkBlocks(
  data: Buffer,
  blockSize: number,
  hashes: Uint8Array,
  hash: (b: Buffer) => Buffer,
  target?: Buffer,
): BlockCheck {
  const runs: [number, number][] = [];
  const n = Math.ceil(data.length / blockSize);
  for (let i = 0; i < n; i++) {
    const start = i * blockSize;
    const end = Math.min(start + blockSize, data.length);
    const block = data.subarray(start, end);
    const got = hash(block);
    if (!got.equals(hashes.subarray(i * 32, (i + 1) * 32))) return { bad: i, runs: [] };
    if (got.equals(zeroHashOf(end - start, hash))) continue;
    if (target) block.copy(target, start);
    const last = runs[runs.length - 1];
    if (last && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  return { bad: -1, runs };
}
