/**
 * Page-aligned, reused buffers for O_DIRECT image writes.
 *
 * The kernel accepts O_DIRECT writes from any 512-byte-aligned address, but
 * on these virtual disks a buffer that is not page-aligned is bounced by the
 * hypervisor: 2 GiB written with O_DIRECT, 4 MiB at a time, took 63–66 s from
 * 512-aligned buffers and 3.5–3.9 s from page-aligned ones (dd's own are).
 * Node has no aligned allocation, but a WebAssembly memory is mapped by V8's
 * page allocator, so it starts on a page boundary. One memory (an arena) is
 * cut into equal slots; an arena is kept for the next writer, because fresh
 * memory is slow to touch for the first time on these VMs. The memory is
 * shared (a SharedArrayBuffer), so the verify worker of a launch copies the
 * verified blocks straight into it; where shared memory cannot be had, an
 * unshared one is used and the copy stays on the writer's thread.
 */

/** Buffers whose first byte is on a page boundary, all `slotBytes` long. */
export interface AlignedArena {
  readonly slots: readonly Buffer[];
  readonly slotBytes: number;
}

const PAGE_64K = 64 * 1024;

/** The one part of WebAssembly used here (the project's type libraries do not declare it). */
interface WasmMemoryApi {
  Memory: new (d: { initial: number; maximum: number; shared?: boolean }) => {
    buffer: ArrayBuffer | SharedArrayBuffer;
  };
}
const wasm = (globalThis as { WebAssembly?: WasmMemoryApi }).WebAssembly;
const spare: AlignedArena[] = [];
const SPARE_MAX = 1;

/**
 * `count` page-aligned buffers of `slotBytes` (a multiple of 64 KiB), or
 * undefined where the runtime has no WebAssembly (`--jitless`) or cannot map
 * the memory: the caller writes through the page cache then.
 */
export function takeArena(count: number, slotBytes: number): AlignedArena | undefined {
  const i = spare.findIndex((a) => a.slotBytes === slotBytes && a.slots.length === count);
  if (i >= 0) return spare.splice(i, 1)[0];
  if (slotBytes % PAGE_64K !== 0 || !wasm) return undefined;
  const pages = (count * slotBytes) / PAGE_64K;
  let memory: { buffer: ArrayBuffer | SharedArrayBuffer } | undefined;
  for (const shared of [true, false]) {
    try {
      memory = new wasm.Memory({ initial: pages, maximum: pages, shared });
      break;
    } catch {
      // no shared memory here (or no room): try the next kind
    }
  }
  if (!memory) return undefined;
  const all = Buffer.from(memory.buffer);
  const slots = Array.from({ length: count }, (_, k) => all.subarray(k * slotBytes, (k + 1) * slotBytes));
  return { slots, slotBytes };
}

/** Gives an arena back once none of its buffers is in use. */
export function returnArena(arena: AlignedArena): void {
  if (spare.length < SPARE_MAX) spare.push(arena);
}
