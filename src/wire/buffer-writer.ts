/** Appends big-endian fields to a growable buffer. */
export class BufferWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialSize = 64) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.pos);
    this.pos += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** A string with a u8 (short) or u16 (long) byte-length prefix. */
  string(s: string, prefix: 8 | 16): this {
    const b = Buffer.from(s, "utf8");
    const max = prefix === 8 ? 0xff : 0xffff;
    if (b.length > max)
      throw new RangeError(`string of ${b.length} bytes exceeds the ${prefix}-bit length prefix`);
    if (prefix === 8) this.u8(b.length);
    else this.u16(b.length);
    return this.bytes(b);
  }

  /** Overwrites a u32 at an earlier position. */
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32BE(v, at);
  }

  get length(): number {
    return this.pos;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
