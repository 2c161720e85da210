/**
 * A small pool of worker threads for CPU-heavy, independent tasks (hashing and
 * compressing disk chunks). Each task goes to the worker with the fewest
 * outstanding tasks; a task's promise settles with its result, with the error
 * the task threw, or with WORKER_FAILED when its worker died. A dead worker is
 * replaced for the tasks that follow. Ordering is the caller's: keep the
 * promises in submission order and await them in that order.
 */
import { type MessagePort, type Transferable, Worker } from "node:worker_threads";
import { FerryError } from "./errors.ts";

export interface WorkerPoolOptions {
  /** The worker's module; it calls `serveTasks`. */
  url: URL;
  /** Worker threads (at least 1). */
  size: number;
  /** Shown in errors. @default "worker" */
  name?: string;
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  dead: boolean;
}

export class WorkerPool<T, R> {
  readonly size: number;
  private readonly o: WorkerPoolOptions;
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(o: WorkerPoolOptions) {
    if (!Number.isInteger(o.size) || o.size < 1) throw new RangeError(`worker pool size ${o.size}`);
    this.o = o;
    this.size = o.size;
    for (let i = 0; i < o.size; i++) this.slots.push(this.spawn());
  }

  /** Tasks sent and not yet answered. */
  get outstanding(): number {
    return this.slots.reduce((n, s) => n + s.pending.size, 0);
  }

  /** Runs `task` on a worker; `transfer` lists buffers moved to the worker rather than copied. */
  run(task: T, transfer: Transferable[] = []): Promise<R> {
    if (this.closed) return Promise.reject(closedError());
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i]!.dead) this.slots[i] = this.spawn();
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    const id = this.nextId++;
    const target = slot;
    return new Promise<R>((resolve, reject) => {
      target.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      target.worker.ref();
      try {
        target.worker.postMessage({ id, task }, transfer);
      } catch (err) {
        target.pending.delete(id);
        this.idle(target);
        reject(err as Error);
      }
    });
  }

  /** Stops the workers; outstanding tasks fail with WORKER_POOL_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.slots.map(async (s) => {
        s.dead = true;
        for (const p of s.pending.values()) p.reject(closedError());
        s.pending.clear();
        await s.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    const worker = new Worker(this.o.url);
    const slot: Slot = { worker, pending: new Map(), dead: false };
    worker.unref();
    // Unref before the thread is up does not cover everything it sets up while starting.
    worker.once("online", () => this.idle(slot));
    worker.on("message", (m: Reply) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      this.idle(slot);
      if (m.ok) p.resolve(m.result);
      else p.reject(reviveError(m.error));
    });
    const die = (why: string) => {
      if (slot.dead) return;
      slot.dead = true;
      const err = new FerryError(
        "WORKER_FAILED",
        `a ${this.o.name ?? "worker"} thread died (${why}); the data it was processing was not sent — restart the agent if this repeats`,
        { kind: "internal", details: { why } },
      );
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on("error", (err) => die(err.message));
    worker.on("exit", (code) => die(`exit code ${code}`));
    return slot;
  }

  /** An idle worker does not keep the process alive. */
  private idle(slot: Slot): void {
    if (slot.pending.size === 0) slot.worker.unref();
  }
}

function closedError(): FerryError {
  return new FerryError("WORKER_POOL_CLOSED", "the worker pool was closed", { kind: "internal" });
}

function reviveError(e: SerializedError): Error {
  if (e.code) return new FerryError(e.code, e.message, { kind: "internal" });
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/**
 * The worker side: answers each `{ id, task }` with `handle(task)`'s result,
 * moving the buffers it lists, or with the error it threw.
 */
export function serveTasks<T>(
  port: MessagePort,
  handle: (task: T) => { result: unknown; transfer?: Transferable[] },
): void {
  port.on("message", ({ id, task }: { id: number; task: T }) => {
    let reply: Reply;
    let transfer: Transferable[] = [];
    try {
      const out = handle(task);
      reply = { id, ok: true, result: out.result };
      transfer = out.transfer ?? [];
    } catch (err) {
      const e = err as Error & { code?: unknown };
      reply = {
        id,
        ok: false,
        error: {
          name: e.name ?? "Error",
          message: e.message ?? String(err),
          ...(typeof e.code === "string" ? { code: e.code } : {}),
        },
      };
    }
    port.postMessage(reply, transfer);
  });
}
