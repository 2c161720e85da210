import { readFile } from "node:fs/promises";

/** Linux's encoding of a device number in st_rdev (see <sys/sysmacros.h>). */
export function deviceNumber(rdev: number): { major: number; minor: number } {
  const r = BigInt(rdev);
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
  return { major, minor };
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, "utf8")).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export interface BlockDeviceInfo {
  /** Size in bytes (sysfs reports 512-byte sectors whatever the device's block size). */
  size: number;
  logicalBlockSize: number;
}

/** Size and logical block size of a block device from /sys/dev/block/M:m (partitions read their parent's queue). */
export async function blockDeviceInfo(rdev: number): Promise<BlockDeviceInfo | undefined> {
  const { major, minor } = deviceNumber(rdev);
  const base = `/sys/dev/block/${major}:${minor}`;
  const sectors = await readNumber(`${base}/size`);
  if (sectors === undefined) return undefined;
  const logicalBlockSize =
    (await readNumber(`${base}/queue/logical_block_size`)) ??
    (await readNumber(`${base}/../queue/logical_block_size`)) ??
    512;
  return { size: sectors * 512, logicalBlockSize };
}
