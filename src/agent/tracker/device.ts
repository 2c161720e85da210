/**
 * What the eBPF tracker needs to know about a block device: its number, the
 * whole disk a partition belongs to (block-layer request tracepoints report
 * the whole disk and absolute sectors), and its I/O counters.
 */
import { readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { FerryError, systemErrorCode } from "../../lib/errors.ts";
import { deviceNumber } from "../disk/sysfs.ts";

export interface TrackedDevice {
  path: string;
  major: number;
  minor: number;
  size: number;
  /** The device whose requests carry the writes: the disk itself, or a partition's parent. */
  traced: { major: number; minor: number; name: string };
  /** First sector of the device on `traced` (0 for a whole disk). */
  startSector: number;
  /** /sys/dev/block/M:m, for counters. */
  sysfs: string;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
}

export async function resolveTrackedDevice(path: string): Promise<TrackedDevice> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = systemErrorCode(err);
    throw new FerryError(
      code === "ENOENT" ? "DISK_NOT_FOUND" : "DISK_OPEN_FAILED",
      `cannot track ${path}: ${(err as Error).message}`,
      { details: { path }, cause: err },
    );
  }
  if (!st.isBlockDevice()) {
    throw new FerryError(
      "TRACKER_NOT_BLOCK_DEVICE",
      `${path} is not a block device: the eBPF tracker follows block devices only (use the scan tracker for image files)`,
      { details: { path } },
    );
  }
  const { major, minor } = deviceNumber(st.rdev);
  const sysfs = `/sys/dev/block/${major}:${minor}`;
  const sectors = Number(await readText(`${sysfs}/size`));
  if (!Number.isFinite(sectors)) {
    throw new FerryError("DISK_SIZE_UNKNOWN", `cannot read the size of ${path} from ${sysfs}/size`, {
      details: { path },
    });
  }
  const isPartition = (await readText(`${sysfs}/partition`)) !== undefined;
  let traced = {
    major,
    minor,
    name: (await readText(`${sysfs}/uevent`))?.match(/DEVNAME=(.*)/)?.[1] ?? path,
  };
  let startSector = 0;
  if (isPartition) {
    startSector = Number(await readText(`${sysfs}/start`));
    const parent = await readText(`${sysfs}/../dev`);
    const m = parent?.match(/^(\d+):(\d+)$/);
    if (!m || !Number.isFinite(startSector)) {
      throw new FerryError("TRACKER_PARTITION_UNKNOWN", `cannot find the disk that partition ${path} is on`, {
        details: { path, sysfs },
      });
    }
    const parentName = (await readText(`${sysfs}/../uevent`))?.match(/DEVNAME=(.*)/)?.[1] ?? "?";
    traced = { major: Number(m[1]), minor: Number(m[2]), name: parentName };
  }
  return { path, major, minor, size: sectors * 512, traced, startSector, sysfs };
}

/** Completed write and discard sectors from the device's stat file (Documentation/block/stat.rst). */
export interface IoCounters {
  writeSectors: number;
  discardSectors: number;
  /** /sys/.../queue/iostats: with accounting off the counters never move and prove nothing. */
  accounting: boolean;
}

export async function readIoCounters(device: TrackedDevice): Promise<IoCounters | undefined> {
  const text = await readText(`${device.sysfs}/stat`);
  if (!text) return undefined;
  const f = text.split(/\s+/).map(Number);
  if (f.length < 13) return undefined;
  const queue =
    device.startSector || device.traced.minor !== device.minor
      ? `${device.sysfs}/../queue`
      : `${device.sysfs}/queue`;
  const iostats = await readText(`${queue}/iostats`);
  return { writeSectors: f[6]!, discardSectors: f[12]!, accounting: iostats !== "0" };
}

/**
 * The completed write and discard sectors and the requests in flight, read
 * synchronously: a read of a few microseconds, so the instants around it
 * bracket the kernel's counting tightly (reconcile.ts). Undefined if the stat
 * file cannot be read.
 */
export function readSectorCountersSync(
  device: TrackedDevice,
): { writeSectors: number; discardSectors: number; inFlight: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`${device.sysfs}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 13) return undefined;
  return { writeSectors: f[6]!, discardSectors: f[12]!, inFlight: f[8]! };
}

export async function readBootId(): Promise<string> {
  return (await readText("/proc/sys/kernel/random/boot_id")) ?? "unknown";
}
