import { WireError } from "./errors.ts";

/** Rejects invalid UTF-8 instead of silently replacing it. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Reads big-endian fields from one complete frame, checking every bound. */
export class BufferReader {
  private pos: number;
  private readonly buf: Buffer;
  private readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  private need(n: number, field: string): void {
    if (this.pos + n > this.end) {
      throw new WireError("WIRE_FRAME_TOO_SHORT", `frame ends inside field "${field}"`, {
        field,
        need: n,
        have: this.end - this.pos,
      });
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf.readUInt8(this.pos++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  string(prefix: 8 | 16, field: string): string {
    const n = prefix === 8 ? this.u8(field) : this.u16(field);
    const raw = this.bytes(n, field);
    try {
      return UTF8.decode(raw);
    } catch {
      throw new WireError("WIRE_BAD_FIELD", `field "${field}" is not valid UTF-8`, { field });
    }
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }
}
