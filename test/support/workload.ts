/**
 * A self-verifying workload. Every written 4 KiB block says what it is:
 *
 *   0   "FERRYWL1"   magic
 *   8   disk id      16 bytes, ASCII, zero-padded
 *   24  offset       u64 BE: where the block belongs
 *   32  generation   u32 BE: which write of the block this is
 *   36  seed         u32 BE: the filler's seed
 *   40  filler       random or text-like (compressible)
 *   4064 checksum    SHA-256 of bytes 0..4064
 *
 * A block of zeros was never written. A torn block (half of one write, half
 * of another), a block at the wrong offset or from another disk fails its
 * check. The verifier compares source and replica in full: the whole-disk
 * hash and the per-block hash list.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

export const BLOCK = 4096;
const MAGIC = Buffer.from("FERRYWL1");
const BODY = BLOCK - 32;
/** Blocks are laid out in groups (one replication hash block) of one kind. */
const GROUP = 64 * 1024;

export interface WorkloadOptions {
  diskId: string;
  size: number;
  /** @default 1 */
  generation?: number;
  /** Share of 64 KiB groups left as zeros (never written). @default 0.25 */
  zeroShare?: number;
  /** Share of the written groups with text-like (compressible) filler. @default 0.5 */
  textShare?: number;
  /** @default 1 */
  seed?: number;
}

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A deterministic value in [0, 1) for group `i` of a given seed. */
function groupDice(seed: number, i: number): number {
  const r = xorshift((seed * 2654435761) ^ (i * 40503 + 1));
  r();
  return r() / 2 ** 32;
}

const WORDS = "replica block sector journal inode extent ferry migrate staging snapshot cutover ".split(" ");

/** Builds one block. */
export function makeBlock(
  diskId: string,
  offset: number,
  generation: number,
  seed: number,
  text: boolean,
): Buffer {
  const b = Buffer.alloc(BLOCK);
  MAGIC.copy(b, 0);
  b.write(diskId.slice(0, 16), 8, "ascii");
  b.writeBigUInt64BE(BigInt(offset), 24);
  b.writeUInt32BE(generation >>> 0, 32);
  b.writeUInt32BE(seed >>> 0, 36);
  const r = xorshift(seed ^ (offset / BLOCK) ^ (generation << 20));
  if (text) {
    let at = 40;
    while (at < BODY) at += b.write(`${WORDS[r() % WORDS.length]} `, at, BODY - at, "ascii");
  } else {
    for (let at = 40; at + 4 <= BODY; at += 4) b.writeUInt32LE(r(), at);
  }
  createHash("sha256").update(b.subarray(0, BODY)).digest().copy(b, BODY);
  return b;
}

/** Writes a whole disk image (sparse where groups are zeros). */
export async function writeWorkload(path: string, o: WorkloadOptions): Promise<void> {
  const generation = o.generation ?? 1;
  const seed = o.seed ?? 1;
  const fh = await open(path, "w");
  try {
    const group = Buffer.alloc(GROUP);
    for (let off = 0; off < o.size; off += GROUP) {
      const dice = groupDice(seed, off / GROUP);
      const n = Math.min(GROUP, o.size - off);
      if (dice < (o.zeroShare ?? 0.25)) continue;
      const text = groupDice(seed + 7, off / GROUP) < (o.textShare ?? 0.5);
      for (let at = 0; at < n; at += BLOCK) {
        makeBlock(o.diskId, off + at, generation, seed, text).copy(group, at);
      }
      await fh.write(group, 0, n, off);
    }
    await fh.truncate(o.size);
  } finally {
    await fh.close();
  }
}

/**
 * The writer: rewrites `count` blocks chosen at random with a new generation
 * (each a single 4 KiB write); returns their offsets.
 */
export async function mutateWorkload(
  path: string,
  o: { diskId: string; size: number; generation: number; count: number; within?: [number, number] },
): Promise<number[]> {
  const [lo, hi] = o.within ?? [0, o.size];
  const r = xorshift(o.generation * 7919 + o.count);
  const offsets = new Set<number>();
  while (offsets.size < o.count) {
    offsets.add(lo + (r() % Math.floor((hi - lo) / BLOCK)) * BLOCK);
  }
  const fh = await open(path, "r+");
  try {
    for (const off of offsets) {
      await fh.write(makeBlock(o.diskId, off, o.generation, o.generation, r() % 2 === 0), 0, BLOCK, off);
    }
  } finally {
    await fh.close();
  }
  return [...offsets].sort((a, b) => a - b);
}

export interface BlockCheck {
  /** Blocks that carry a valid header and checksum for this disk and offset. */
  valid: number;
  /** Blocks of zeros (never written). */
  empty: number;
  /** Offsets of blocks that fail: torn, misplaced, foreign or damaged (first 32). */
  bad: number[];
  badCount: number;
  /** Highest generation seen. */
  maxGeneration: number;
}

/** Checks every block of an image (the first `size` bytes) against its own header. */
export async function checkBlocks(path: string, diskId: string, size: number): Promise<BlockCheck> {
  const id = Buffer.alloc(16);
  id.write(diskId.slice(0, 16), "ascii");
  const out: BlockCheck = { valid: 0, empty: 0, bad: [], badCount: 0, maxGeneration: 0 };
  await forEachChunk(path, size, (chunk, base) => {
    for (let at = 0; at < chunk.length; at += BLOCK) {
      const b = chunk.subarray(at, at + BLOCK);
      const offset = base + at;
      if (isZero(b)) {
        out.empty++;
        continue;
      }
      const ok =
        b.length === BLOCK &&
        b.subarray(0, 8).equals(MAGIC) &&
        b.subarray(8, 24).equals(id) &&
        b.readBigUInt64BE(24) === BigInt(offset) &&
        createHash("sha256").update(b.subarray(0, BODY)).digest().equals(b.subarray(BODY));
      if (ok) {
        out.valid++;
        out.maxGeneration = Math.max(out.maxGeneration, b.readUInt32BE(32));
      } else {
        out.badCount++;
        if (out.bad.length < 32) out.bad.push(offset);
      }
    }
  });
  return out;
}

export interface DiskDigest {
  /** SHA-256 of the whole disk. */
  whole: string;
  /** SHA-256 of each 4 KiB block, concatenated. */
  blocks: Buffer;
}

export async function digestDisk(path: string, size: number): Promise<DiskDigest> {
  const whole = createHash("sha256");
  const blocks = Buffer.alloc(Math.ceil(size / BLOCK) * 32);
  await forEachChunk(path, size, (chunk, base) => {
    whole.update(chunk);
    for (let at = 0; at < chunk.length; at += BLOCK) {
      createHash("sha256")
        .update(chunk.subarray(at, at + BLOCK))
        .digest()
        .copy(blocks, ((base + at) / BLOCK) * 32);
    }
  });
  return { whole: whole.digest("hex"), blocks };
}

export interface Comparison {
  identical: boolean;
  sourceHash: string;
  replicaHash: string;
  /** Blocks whose hashes differ. */
  differentBlocks: number;
  /** First offsets that differ. */
  firstDifferent: number[];
  /** Self-check of the replica's blocks. */
  replica: BlockCheck;
}

/**
 * The full comparison: whole-disk hash and per-block hash list of source and
 * replica, and every replica block checked against its own header.
 */
export async function compareDisks(
  source: string,
  replica: string,
  size: number,
  diskId: string,
): Promise<Comparison> {
  const [a, b, check] = await Promise.all([
    digestDisk(source, size),
    digestDisk(replica, size),
    checkBlocks(replica, diskId, size),
  ]);
  let differentBlocks = 0;
  const firstDifferent: number[] = [];
  for (let i = 0; i < a.blocks.length; i += 32) {
    if (!a.blocks.subarray(i, i + 32).equals(b.blocks.subarray(i, i + 32))) {
      differentBlocks++;
      if (firstDifferent.length < 16) firstDifferent.push((i / 32) * BLOCK);
    }
  }
  return {
    identical: a.whole === b.whole && differentBlocks === 0 && check.badCount === 0,
    sourceHash: a.whole,
    replicaHash: b.whole,
    differentBlocks,
    firstDifferent,
    replica: check,
  };
}

const ZEROS = Buffer.alloc(BLOCK);

function isZero(b: Buffer): boolean {
  return b.equals(ZEROS.subarray(0, b.length));
}

async function forEachChunk(
  path: string,
  size: number,
  fn: (chunk: Buffer, offset: number) => void,
): Promise<void> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(4 * 1024 * 1024);
    for (let pos = 0; pos < size;) {
      const want = Math.min(buf.length, size - pos);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) {
        throw new Error(`${path} ends at ${pos}, before ${size} bytes`);
      }
      fn(buf.subarray(0, bytesRead), pos);
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
