/**
 * A disk's hash list: the recorded hash of every hash block (BLAKE3, or the
 * zero marker), so two copies can be compared without reading both.
 *
 *   "FERRYHL1"  u32 hashBlockSize  u64 diskSize  then 32 bytes per block
 */
import { WireError } from "./errors.ts";
import { HASH_BYTES } from "./messages.ts";

const MAGIC = Buffer.from("FERRYHL1");
const HEADER = MAGIC.length + 4 + 8;
/** Refuse lists for disks beyond 1 PiB at 4 KiB blocks (bounded allocation). */
const MAX_BLOCKS = 2 ** 38;

export interface HashList {
  hashBlockSize: number;
  diskSize: number;
  /** Concatenated 32-byte hashes, one per block. */
  hashes: Buffer;
}

export function blockCount(diskSize: number, hashBlockSize: number): number {
  return Math.ceil(diskSize / hashBlockSize);
}

export function encodeHashList(list: HashList): Buffer {
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(list.hashBlockSize, 8);
  head.writeBigUInt64BE(BigInt(list.diskSize), 12);
  return Buffer.concat([head, list.hashes]);
}

export function decodeHashList(buf: Buffer): HashList {
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new WireError("WIRE_BAD_FIELD", "not a Ferry hash list (bad magic)");
  }
  const hashBlockSize = buf.readUInt32BE(8);
  const size = buf.readBigUInt64BE(12);
  if (hashBlockSize < 512 || (hashBlockSize & (hashBlockSize - 1)) !== 0) {
    throw new WireError(
      "WIRE_BAD_FIELD",
      `hash list block size ${hashBlockSize} is not a power of two ≥ 512`,
    );
  }
  if (size > BigInt(Number.MAX_SAFE_INTEGER))
    throw new WireError("WIRE_BAD_FIELD", `hash list disk size ${size} too large`);
  const diskSize = Number(size);
  const blocks = blockCount(diskSize, hashBlockSize);
  if (blocks > MAX_BLOCKS || buf.length - HEADER !== blocks * HASH_BYTES) {
    throw new WireError(
      "WIRE_BAD_FIELD",
      `hash list holds ${buf.length - HEADER} bytes of hashes, expected ${blocks * HASH_BYTES} for ${diskSize} bytes`,
    );
  }
  return { hashBlockSize, diskSize, hashes: buf.subarray(HEADER) };
}
