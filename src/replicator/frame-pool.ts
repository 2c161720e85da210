/**
 * Reusable memory for the frames the decoder assembles from several socket
 * chunks (every large DATA frame: TLS hands over at most 16 KiB at a time).
 * A fresh 1 MiB buffer per frame costs more than the copy into it: the
 * allocator maps new pages (page faults, zeroing by the kernel) and V8 counts
 * the memory as external, which starts a full garbage collection every few
 * dozen MiB. Frames of at least `minBytes` get a buffer from a free list of
 * size classes; the session hands it back once the frame's bytes were written
 * (or dropped). Small frames are ordinary allocations. With `shared`, the
 * memory is a SharedArrayBuffer, which worker threads check payloads in place
 * in; without it, an ordinary ArrayBuffer: V8 copies into shared memory with
 * word-by-word relaxed atomic moves (`relaxed_memmove`), and that copy of every
 * frame cost the replicator 8-11% of its CPU when no worker reads the memory.
 */

export interface FramePoolOptions {
  /** Frames smaller than this are not pooled. @default 64 KiB */
  minBytes?: number;
  /** Sizes are rounded up to a multiple of this. @default 64 KiB */
  classBytes?: number;
  /** Free memory kept for reuse, across size classes; more is left to the GC. @default 64 MiB */
  maxFreeBytes?: number;
  /** SharedArrayBuffers, for worker threads to read in place (only worth it when some do). @default false */
  shared?: boolean;
}

type Memory = ArrayBuffer | SharedArrayBuffer;

export class FramePool {
  private readonly minBytes: number;
  private readonly classBytes: number;
  private readonly maxFreeBytes: number;
  private readonly shared: boolean;
  /** Free buffers by size (bytes). */
  private readonly free = new Map<number, Memory[]>();
  /** Buffers handed out and not yet given back. */
  private readonly lent = new WeakSet<Memory>();
  private freeBytes = 0;
  /** Allocations that found no free buffer (for tests and figures). */
  misses = 0;

  constructor(o: FramePoolOptions = {}) {
    this.minBytes = o.minBytes ?? 64 * 1024;
    this.classBytes = o.classBytes ?? 64 * 1024;
    this.maxFreeBytes = o.maxFreeBytes ?? 64 * 1024 * 1024;
    this.shared = o.shared ?? false;
  }

  /** A buffer of exactly `bytes` bytes (contents undefined); pass it to `release` when done. */
  allocate(bytes: number): Buffer {
    if (bytes < this.minBytes) return Buffer.allocUnsafe(bytes);
    const size = Math.ceil(bytes / this.classBytes) * this.classBytes;
    let ab = this.free.get(size)?.pop();
    if (ab) this.freeBytes -= size;
    else {
      // allocUnsafeSlow: a whole ArrayBuffer of its own, not zero-filled (the frame overwrites it).
      ab = this.shared ? new SharedArrayBuffer(size) : Buffer.allocUnsafeSlow(size).buffer;
      this.misses++;
    }
    this.lent.add(ab);
    return Buffer.from(ab, 0, bytes);
  }

  /**
   * Gives back the buffer `view` lies in, if it came from this pool and was
   * not given back already; anything else is ignored. No view of it may be
   * used afterwards.
   */
  release(view: Uint8Array): void {
    const ab = view.buffer;
    if (!this.lent.has(ab)) return;
    this.lent.delete(ab);
    if (this.freeBytes + ab.byteLength > this.maxFreeBytes) return;
    let list = this.free.get(ab.byteLength);
    if (!list) this.free.set(ab.byteLength, (list = []));
    list.push(ab);
    this.freeBytes += ab.byteLength;
  }

  /** Bytes kept for reuse. */
  get idleBytes(): number {
    return this.freeBytes;
  }
}
