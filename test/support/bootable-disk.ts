/**
 * A small bootable Linux disk built from Debian packages, for tests that
 * launch and boot a copy: Debian's cloud kernel and busybox-static
 * (`apt-get download` + `dpkg-deb -x`), an initramfs of our own that loads the
 * virtio modules and switches to the ext4 root on /dev/vda, and a root whose
 * /init prints a marker on the serial console and stays up. The kernel and
 * initramfs sit in the root filesystem's /boot, where the qemu launch target
 * finds them. Built once per kernel version and cached under .tools/.
 */
import { execFile } from "node:child_process";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What the disk's /init prints when the system is up. */
export const BOOT_MARKER = "FERRY-BOOT-OK";

const MODULES = [
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "drivers/block/virtio_blk.ko",
];

const INITRAMFS_INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in ${MODULES.map((m) => `/modules/${m.split("/").pop()}`).join(" ")}; do /bin/busybox insmod "$m"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "ferry initramfs: cannot mount /dev/vda"; /bin/busybox poweroff -f; }
/bin/busybox umount /proc
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /init
`;

const ROOT_INIT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "${BOOT_MARKER} $(/bin/busybox cat /etc/ferry-disk-id) kernel $(/bin/busybox uname -r)"
echo "ferry test instance login:"
# Stay up like a server would, until the instance is stopped.
while :; do /bin/busybox sleep 3600; done
`;

/** A cpio "newc" archive of the regular files and directories under `dir` (the initramfs format). */
async function newcArchive(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name: string, mode: number, data: Buffer) => {
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}`;
    const head = Buffer.concat([Buffer.from(header), Buffer.from(`${name}\0`)]);
    parts.push(head, pad(head.length), data, pad(data.length));
  };
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await stat(join(dir, r));
      if (st.isDirectory()) {
        entry(r, 0o040755, Buffer.alloc(0));
        await walk(r);
      } else entry(r, 0o100000 | (st.mode & 0o777), await readFile(join(dir, r)));
    }
  };
  await walk("");
  entry("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

async function packageFor(meta: string): Promise<string> {
  let { stdout } = await run("apt-cache", ["depends", meta]).catch(() => ({ stdout: "" }));
  if (!stdout.includes("Depends:")) {
    // A fresh machine may have no package lists yet.
    await run("apt-get", ["update", "-qq"]);
    ({ stdout } = await run("apt-cache", ["depends", meta]));
  }
  const m = /Depends: (linux-image-[^\s]+)/.exec(stdout);
  if (!m) throw new Error(`apt-cache depends ${meta}: no linux-image dependency in:\n${stdout}`);
  return m[1]!;
}

async function download(dir: string, pkg: string): Promise<string> {
  await run("apt-get", ["download", pkg], { cwd: dir });
  const deb = (await readdir(dir)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${dir}`);
  return join(dir, deb);
}

/**
 * The path of a bootable 64 MiB raw disk whose /etc/ferry-disk-id holds
 * `diskId`. The kernel and busybox are downloaded once and cached.
 */
export async function buildBootableDisk(out: string, diskId: string): Promise<string> {
  const cacheRoot = resolve(import.meta.dirname, "..", "..", ".tools", "bootable-disk");
  const kernelPkg = await packageFor("linux-image-cloud-amd64");
  const cache = join(cacheRoot, kernelPkg);
  if (!existsSync(join(cache, "ready"))) {
    const work = await mkdtemp(join(tmpdir(), "ferry-bootable-"));
    try {
      const kdeb = await download(work, kernelPkg);
      const bdeb = await download(work, "busybox-static");
      await run("dpkg-deb", ["-x", kdeb, join(work, "k")]);
      await run("dpkg-deb", ["-x", bdeb, join(work, "b")]);
      const kver = kernelPkg.replace(/^linux-image-/, "");
      const staging = join(work, "cache");
      await mkdir(staging, { recursive: true });
      await copyFile(join(work, "k", "boot", `vmlinuz-${kver}`), join(staging, "vmlinuz"));
      await copyFile(join(work, "b", "bin", "busybox"), join(staging, "busybox"));
      // The initramfs: busybox, the virtio modules, our init.
      const ird = join(work, "initramfs");
      await mkdir(join(ird, "bin"), { recursive: true });
      await mkdir(join(ird, "modules"));
      await copyFile(join(work, "b", "bin", "busybox"), join(ird, "bin", "busybox"));
      for (const m of MODULES)
        await copyFile(
          join(work, "k", "lib", "modules", kver, "kernel", m),
          join(ird, "modules", m.split("/").pop()!),
        );
      await writeFile(join(ird, "init"), INITRAMFS_INIT);
      await chmod(join(ird, "init"), 0o755);
      await writeFile(join(staging, "initrd.img"), gzipSync(await newcArchive(ird), { level: 1 }));
      await writeFile(join(staging, "ready"), `${kernelPkg}\n`);
      await mkdir(cacheRoot, { recursive: true });
      await rm(cache, { recursive: true, force: true });
      await rename(staging, cache);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const root = await mkdtemp(join(tmpdir(), "ferry-bootable-root-"));
  try {
    for (const d of ["bin", "boot", "etc", "proc", "sys", "dev", "tmp"]) await mkdir(join(root, d));
    await copyFile(join(cache, "busybox"), join(root, "bin", "busybox"));
    await symlink("busybox", join(root, "bin", "sh"));
    await copyFile(join(cache, "vmlinuz"), join(root, "boot", "vmlinuz"));
    await copyFile(join(cache, "initrd.img"), join(root, "boot", "initrd.img"));
    await writeFile(join(root, "etc", "ferry-disk-id"), `${diskId}\n`);
    await writeFile(join(root, "etc", "fstab"), "/dev/vda / ext4 defaults 0 1\n");
    await writeFile(join(root, "init"), ROOT_INIT);
    await chmod(join(root, "init"), 0o755);
    await rm(out, { force: true });
    await run("mke2fs", ["-q", "-F", "-t", "ext4", "-b", "4096", "-d", root, out, "64M"]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return out;
}
