/**
 * Checks stored blocks against their recorded BLAKE3 hashes on worker
 * threads, so that a launch reading a snapshot hashes while the main thread
 * reads and writes (BLAKE3 is the largest CPU cost of a launch: 4 GiB of it
 * is 1–4 s of one core on these machines). Only blocks in shared memory go to
 * a worker (they are hashed in place); others are hashed here. A launch also
 * has the worker copy the verified blocks into the image writer's aligned
 * (shared) buffers in the same pass (`check` with a target), so its main
 * thread touches no byte of the disk. Workers do not keep the process alive
 * while idle.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { FerryError } from "../lib/errors.ts";
import { blake3Of } from "../wire/index.ts";
import { checkBlocks, type BlockCheck } from "./verify-blocks.ts";

export interface VerifyTask {
  id: number;
  memory: SharedArrayBuffer;
  offset: number;
  length: number;
  blockSize: number;
  /** The recorded hash of each block, 32 bytes each. */
  hashes: Uint8Array;
  /** Where to copy the verified blocks that are not zeros (same offsets as the data). */
  target?: { memory: SharedArrayBuffer; offset: number; length: number };
}

export interface VerifyReply {
  id: number;
  /** Index of the first block whose hash differs, or -1. */
  bad: number;
  /** With a target: the ranges copied (see BlockCheck). */
  runs?: [number, number][];
  error?: string;
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve(r: BlockCheck): void; reject(err: Error): void }>;
  dead: boolean;
}

/** Index of the first block of `data` whose BLAKE3 differs from `hashes`, or -1 (on this thread). */
export function firstBadBlock(data: Buffer, blockSize: number, hashes: Buffer): number {
  const n = Math.ceil(data.length / blockSize);
  for (let i = 0; i < n; i++) {
    const got = blake3Of(data.subarray(i * blockSize, Math.min((i + 1) * blockSize, data.length)));
    if (!got.equals(hashes.subarray(i * 32, (i + 1) * 32))) return i;
  }
  return -1;
}

export class VerifyPool {
  private readonly slots: Slot[] = [];
  private readonly size: number;
  private nextId = 1;
  private closed = false;

  /**
   * Two workers where there are two cores: a launch's main thread only
   * issues reads and writes, while the workers hash and copy every byte
   * (4 GiB launches back to back on 2 vCPUs: 437–661 MB/s, median 612, with
   * two workers against 496–576, median 556, before the copy moved; one
   * worker alone was more variable, 385–709).
   */
  constructor(size = Math.max(1, Math.min(2, availableParallelism()))) {
    this.size = size;
  }

  /** Index of the first bad block, or -1. */
  async firstBadBlock(data: Buffer, blockSize: number, hashes: Buffer): Promise<number> {
    if (!(data.buffer instanceof SharedArrayBuffer) || this.closed)
      return firstBadBlock(data, blockSize, hashes);
    return (await this.post(data, blockSize, hashes)).bad;
  }

  /**
   * Checks `data` against `hashes` and copies the blocks that are not zeros
   * to the same offsets of `target` (at least `data.length` long), on a
   * worker when both are in shared memory, else on this thread.
   */
  async check(data: Buffer, blockSize: number, hashes: Buffer, target: Buffer): Promise<BlockCheck> {
    if (target.length < data.length)
      throw new FerryError("BAD_RANGE", `a ${target.length}-byte target cannot take ${data.length} bytes`, {
        kind: "internal",
      });
    if (
      !(data.buffer instanceof SharedArrayBuffer) ||
      !(target.buffer instanceof SharedArrayBuffer) ||
      this.closed
    )
      return checkBlocks(data, blockSize, hashes, blake3Of, target);
    return this.post(data, blockSize, hashes, {
      memory: target.buffer,
      offset: target.byteOffset,
      length: data.length,
    });
  }

  private post(
    data: Buffer,
    blockSize: number,
    hashes: Buffer,
    target?: VerifyTask["target"],
  ): Promise<BlockCheck> {
    const slot = this.pick();
    const id = this.nextId++;
    const task: VerifyTask = {
      id,
      memory: data.buffer as SharedArrayBuffer,
      offset: data.byteOffset,
      length: data.length,
      blockSize,
      hashes: new Uint8Array(hashes),
      ...(target ? { target } : {}),
    };
    const p = new Promise<BlockCheck>((resolve, reject) => slot.pending.set(id, { resolve, reject }));
    slot.worker.ref();
    slot.worker.postMessage(task);
    return p;
  }

  private pick(): Slot {
    for (let i = this.slots.length - 1; i >= 0; i--) if (this.slots[i]!.dead) this.slots.splice(i, 1);
    const idle = this.slots.find((s) => s.pending.size === 0);
    if (idle) return idle;
    if (this.slots.length < this.size) {
      const slot = this.spawn();
      this.slots.push(slot);
      return slot;
    }
    return this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): Slot {
    const worker = new Worker(new URL("./verify-worker.ts", import.meta.url));
    const slot: Slot = { worker, pending: new Map(), dead: false };
    worker.on("message", (m: VerifyReply) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.error)
        p.reject(
          new FerryError("VERIFY_FAILED", `block verification failed: ${m.error}`, { kind: "internal" }),
        );
      else p.resolve({ bad: m.bad, runs: m.runs ?? [] });
    });
    const die = (why: string) => {
      if (slot.dead) return;
      slot.dead = true;
      const err = new FerryError("WORKER_FAILED", `a block verification thread died (${why})`, {
        kind: "internal",
      });
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on("error", (err) => die(err.message));
    worker.on("exit", (code) => die(`exit code ${code}`));
    // After the listeners: a worker unreferenced before them keeps the process alive.
    worker.unref();
    return slot;
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let shared: VerifyPool | undefined;

/** The process's verify pool (its idle workers keep nothing alive). */
export function sharedVerifyPool(): VerifyPool {
  shared ??= new VerifyPool();
  return shared;
}
