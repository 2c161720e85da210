/**
 * Disk discovery for the installer: the whole block devices in /sys/block
 * with their sizes, and which one holds the root filesystem (through
 * partitions and device-mapper/LVM layers), because the root disk is always
 * replicated, as with MGN.
 */
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { FerryError, systemErrorCode } from "../lib/errors.ts";

export interface BlockDisk {
  /** `/dev/<name>` */
  deviceName: string;
  bytes: number;
  /** Holds the root filesystem (directly, in a partition, or under LVM/dm). */
  root: boolean;
  /** `/sys/block/<name>/removable` */
  removable: boolean;
}

export interface DiskDiscoveryOptions {
  /** Prefix for /sys and /proc, for tests. @default "/" */
  root?: string;
}

/** Virtual or stacked devices that are not disks to migrate (their backing disks are listed instead). */
const NOT_DISKS = /^(ram|zram|dm-|md|sr|fd|nbd)\d*/;

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (err) {
    const code = systemErrorCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}

async function list(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return [];
    throw err;
  }
}

/** `MAJ:MIN` of the device mounted at `/`, from mountinfo (undefined on overlay/tmpfs roots). */
export function rootDeviceNumber(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f[4] === "/" && f[2] && !f[2].startsWith("0:")) return f[2];
  }
  return undefined;
}

/** The whole disks under the device `devNo` (itself, the parent of a partition, or the slaves of dm/md). */
async function disksHolding(sys: string, devNo: string, depth = 0): Promise<string[]> {
  if (depth > 8) return [];
  for (const name of await list(join(sys, "block"))) {
    const dir = join(sys, "block", name);
    if ((await readText(join(dir, "dev"))) === devNo) {
      if (!NOT_DISKS.test(name)) return [name];
      const out: string[] = [];
      for (const slave of await list(join(dir, "slaves"))) {
        const slaveDev = (await readText(join(dir, "slaves", slave, "dev"))) ?? "";
        out.push(...(await disksHolding(sys, slaveDev, depth + 1)));
      }
      return out;
    }
    for (const part of await list(dir)) {
      if (!part.startsWith(name)) continue;
      if ((await readText(join(dir, part, "dev"))) === devNo) return [name];
    }
  }
  return [];
}

/** The block devices of this machine that can be replicated, largest first after the root disk. */
export async function listDisks(options: DiskDiscoveryOptions = {}): Promise<BlockDisk[]> {
  const base = options.root ?? "/";
  const sys = join(base, "sys");
  const mountinfo = (await readText(join(base, "proc/self/mountinfo"))) ?? "";
  const rootDev = rootDeviceNumber(mountinfo);
  const rootDisks = new Set(rootDev ? await disksHolding(sys, rootDev) : []);
  const disks: BlockDisk[] = [];
  for (const name of await list(join(sys, "block"))) {
    if (NOT_DISKS.test(name)) continue;
    const sectors = Number((await readText(join(sys, "block", name, "size"))) ?? 0);
    if (!(sectors > 0)) continue;
    disks.push({
      deviceName: `/dev/${name}`,
      bytes: sectors * 512,
      root: rootDisks.has(name),
      removable: (await readText(join(sys, "block", name, "removable"))) === "1",
    });
  }
  return disks.sort((a, b) => Number(b.root) - Number(a.root) || a.deviceName.localeCompare(b.deviceName));
}

/** Size of a block device or image file given with `--devices`. */
export async function deviceSize(path: string): Promise<number> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new FerryError(
      "DEVICE_NOT_FOUND",
      `device ${path} does not exist (${systemErrorCode(err) ?? String(err)}): list the disks with \`ferry agent disks\``,
    );
  }
  if (st.isFile()) return st.size;
  if (!st.isBlockDevice()) {
    throw new FerryError("NOT_A_DISK", `${path} is neither a block device nor an image file`);
  }
  // A block device's stat size is 0: read it from sysfs (sectors of 512 bytes).
  const name = (await realpath(path)).split("/").pop() ?? "";
  const sectors = await readText(`/sys/class/block/${name}/size`);
  if (sectors === undefined) {
    throw new FerryError(
      "NOT_A_DISK",
      `cannot tell the size of ${path}: no /sys/class/block/${name} entry for it`,
    );
  }
  return Number(sectors) * 512;
}

/**
 * The disks to replicate: the ones asked for (comma-separated paths, as MGN's
 * `--devices`), or all when none are asked for, and always the root disk.
 */
export async function chooseDisks(
  available: BlockDisk[],
  requested: string[] | undefined,
): Promise<{ deviceName: string; bytes: number }[]> {
  if (!requested || requested.length === 0)
    return available.map((d) => ({ deviceName: d.deviceName, bytes: d.bytes }));
  const chosen = new Map<string, number>();
  for (const d of available) if (d.root) chosen.set(d.deviceName, d.bytes);
  for (const path of requested) {
    if (chosen.has(path)) continue;
    const known = available.find((d) => d.deviceName === path);
    chosen.set(path, known ? known.bytes : await deviceSize(path));
  }
  return [...chosen].map(([deviceName, bytes]) => ({ deviceName, bytes }));
}
