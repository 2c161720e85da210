/**
 * The dirty set: one bit per block of the device. 1 TiB at 64 KiB blocks is
 * 2 MiB of memory. Marking is O(blocks touched); draining walks 32 bits at a
 * time so an almost-clean bitmap drains fast.
 */
import type { DirtyExtent } from "./types.ts";

export class DirtyBitmap {
  readonly blockSize: number;
  readonly deviceSize: number;
  readonly blocks: number;
  private readonly words: Uint32Array;
  private count = 0;

  constructor(deviceSize: number, blockSize: number, bits?: Uint8Array) {
    if (blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) {
      throw new RangeError(`block size ${blockSize} is not a power of two ≥ 512`);
    }
    this.blockSize = blockSize;
    this.deviceSize = deviceSize;
    this.blocks = Math.ceil(deviceSize / blockSize);
    this.words = new Uint32Array(Math.ceil(this.blocks / 32));
    if (bits) {
      if (bits.length !== DirtyBitmap.byteLength(deviceSize, blockSize)) {
        throw new RangeError(`bitmap of ${bits.length} bytes for ${this.blocks} blocks`);
      }
      new Uint8Array(this.words.buffer).set(bits);
      // Bits past the last block would be extents beyond the disk: drop them.
      const tail = this.blocks % 32;
      if (tail && this.words.length) this.words[this.words.length - 1]! &= (1 << tail) - 1;
      for (const w of this.words) this.count += popcount(w);
    }
  }

  static byteLength(deviceSize: number, blockSize: number): number {
    return Math.ceil(Math.ceil(deviceSize / blockSize) / 32) * 4;
  }

  /** Dirty blocks. */
  get dirtyBlocks(): number {
    return this.count;
  }

  /** Bytes covered by dirty blocks (the last block may be short). */
  get dirtyBytes(): number {
    if (this.count === 0) return 0;
    const last = this.blocks - 1;
    const lastShort = this.isDirty(last) ? this.blocks * this.blockSize - this.deviceSize : 0;
    return this.count * this.blockSize - lastShort;
  }

  isDirty(block: number): boolean {
    return ((this.words[block >>> 5]! >>> (block & 31)) & 1) === 1;
  }

  /** Marks every block touched by [offset, offset + length), clipped to the device. */
  markRange(offset: number, length: number): void {
    if (length <= 0) return;
    const start = Math.max(0, offset);
    const end = Math.min(this.deviceSize, offset + length);
    if (end <= start) return;
    const first = Math.floor(start / this.blockSize);
    const last = Math.floor((end - 1) / this.blockSize);
    for (let b = first; b <= last; b++) {
      const w = b >>> 5;
      const bit = 1 << (b & 31);
      if ((this.words[w]! & bit) === 0) {
        this.words[w]! |= bit;
        this.count++;
      }
    }
  }

  markAll(): void {
    this.markRange(0, this.deviceSize);
  }

  /** The dirty blocks as coalesced extents in offset order, without clearing. */
  extents(): DirtyExtent[] {
    const out: DirtyExtent[] = [];
    if (this.count === 0) return out;
    let runStart = -1;
    for (let w = 0; w < this.words.length; w++) {
      const word = this.words[w]!;
      if (runStart < 0 && word === 0) continue;
      if (runStart >= 0 && word === 0xffffffff) continue;
      for (let i = 0; i < 32; i++) {
        const b = w * 32 + i;
        if (b >= this.blocks) break;
        const set = ((word >>> i) & 1) === 1;
        if (set && runStart < 0) runStart = b;
        else if (!set && runStart >= 0) {
          out.push(this.extentOf(runStart, b));
          runStart = -1;
        }
      }
    }
    if (runStart >= 0) out.push(this.extentOf(runStart, this.blocks));
    return out;
  }

  /** Returns the extents and clears the bitmap. */
  drain(): DirtyExtent[] {
    const out = this.extents();
    this.words.fill(0);
    this.count = 0;
    return out;
  }

  /** The raw bits (host-order 32-bit words: little-endian on every platform Ferry runs on), for persisting. */
  toBytes(): Uint8Array {
    return new Uint8Array(this.words.buffer.slice(0));
  }

  private extentOf(fromBlock: number, toBlock: number): DirtyExtent {
    const offset = fromBlock * this.blockSize;
    return { offset, length: Math.min(toBlock * this.blockSize, this.deviceSize) - offset };
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
