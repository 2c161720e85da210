/**
 * A tracker's persisted state in its state directory (one directory per
 * tracked device):
 *
 *   dirty.bitmap     "FERRYDB1" u32 blockSize u64 deviceSize u32 crc32(bits) bits
 *                    (written on stop, and periodically while running)
 *   clean-stop.json  the clean-stop marker: written last by stop(), removed by
 *                    start() before tracking begins. A start that finds no
 *                    marker knows the previous run did not end cleanly.
 *
 * Both are replaced atomically (temp file, fsync, rename, fsync of the directory).
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { FerryError, systemErrorCode } from "../../lib/errors.ts";
import { DirtyBitmap } from "./bitmap.ts";
import type { IoCounters } from "./device.ts";
import type { TrackerGap } from "./types.ts";

const MAGIC = Buffer.from("FERRYDB1");
const HEADER = MAGIC.length + 4 + 8 + 4;
export const BITMAP_FILE = "dirty.bitmap";
export const MARKER_FILE = "clean-stop.json";

/** What identifies the tracked device: state for another device, size or granularity is not reused. */
export interface TrackedIdentity {
  devicePath: string;
  /** "major:minor", or "file" for image files. */
  device: string;
  deviceSize: number;
  blockSize: number;
}

export interface CleanStopMarker extends TrackedIdentity {
  version: 1;
  kind: "ebpf" | "scan";
  stoppedAt: string;
  bootId: string;
  /** The device's completed write/discard sectors once the tracer had exited. */
  counters?: IoCounters;
  /** A gap not yet acknowledged when the tracker stopped: it survives the restart. */
  gap?: TrackerGap;
}

export function encodeBitmapFile(bitmap: DirtyBitmap): Buffer {
  const bits = Buffer.from(bitmap.toBytes());
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(bitmap.blockSize, 8);
  head.writeBigUInt64BE(BigInt(bitmap.deviceSize), 12);
  head.writeUInt32BE(crc32(bits), 20);
  return Buffer.concat([head, bits]);
}

/** The bitmap in `buf`, or undefined when it is damaged or for another size or block size. */
export function decodeBitmapFile(
  buf: Buffer,
  deviceSize: number,
  blockSize: number,
): DirtyBitmap | undefined {
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (buf.readUInt32BE(8) !== blockSize) return undefined;
  if (buf.readBigUInt64BE(12) !== BigInt(deviceSize)) return undefined;
  const bits = buf.subarray(HEADER);
  if (bits.length !== DirtyBitmap.byteLength(deviceSize, blockSize)) return undefined;
  if (crc32(bits) !== buf.readUInt32BE(20)) return undefined;
  return new DirtyBitmap(deviceSize, blockSize, bits);
}

async function writeAtomic(dir: string, name: string, data: Buffer | string): Promise<void> {
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class TrackerStateStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async ensureDir(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new FerryError(
        "TRACKER_STATE_DIR",
        `cannot create the tracker state directory ${this.dir}: ${(err as Error).message}`,
        { details: { dir: this.dir, errno: systemErrorCode(err) }, cause: err },
      );
    }
  }

  async readMarker(): Promise<CleanStopMarker | undefined> {
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, MARKER_FILE), "utf8")) as CleanStopMarker;
      return parsed.version === 1 ? parsed : undefined;
    } catch {
      // Missing or damaged: either way the previous stop is not known to be clean.
      return undefined;
    }
  }

  async readBitmap(deviceSize: number, blockSize: number): Promise<DirtyBitmap | undefined> {
    try {
      return decodeBitmapFile(await readFile(join(this.dir, BITMAP_FILE)), deviceSize, blockSize);
    } catch {
      return undefined;
    }
  }

  /** Removes the marker durably: from here on, a crash is visible to the next start. */
  async clearMarker(): Promise<void> {
    await rm(join(this.dir, MARKER_FILE), { force: true });
    await syncDir(this.dir);
  }

  async writeBitmap(bitmap: DirtyBitmap): Promise<void> {
    await writeAtomic(this.dir, BITMAP_FILE, encodeBitmapFile(bitmap));
  }

  async writeMarker(marker: CleanStopMarker): Promise<void> {
    await writeAtomic(this.dir, MARKER_FILE, JSON.stringify(marker, null, 2));
  }
}

/** Why a start cannot trust what the previous run left, or undefined when it can. */
export function checkPreviousRun(
  marker: CleanStopMarker | undefined,
  identity: TrackedIdentity,
  hadBitmap: boolean,
  bootId: string,
): (Pick<TrackerGap, "code" | "reason"> & { since?: string }) | undefined {
  if (!marker) {
    return hadBitmap
      ? { code: "unclean-stop", reason: "the previous run did not stop cleanly (no clean-stop marker)" }
      : {
          code: "first-start",
          reason: "no tracking state from a previous run: changes before this start were not observed",
        };
  }
  for (const key of ["devicePath", "device", "deviceSize", "blockSize"] as const) {
    if (marker[key] !== identity[key]) {
      return {
        code: "state-mismatch",
        reason: `the saved tracking state is for ${key} ${String(marker[key])}, not ${String(identity[key])}`,
      };
    }
  }
  if (!hadBitmap) return { code: "unclean-stop", reason: "the saved dirty bitmap is missing or damaged" };
  // A gap still open at the last stop is still open: same cause, same start time.
  if (marker.gap) return marker.gap;
  if (marker.bootId !== bootId) {
    return {
      code: "rebooted",
      reason: "the machine rebooted since the clean stop: writes at shutdown and boot were not observed",
    };
  }
  return undefined;
}
