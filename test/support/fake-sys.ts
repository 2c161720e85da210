/** A fake /sys and /proc for disk discovery (`listDisks({ root })`, FERRY_SYS_ROOT). */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fake /sys and /proc: `disks` name → {dev, sectors, parts, slaves}. */
export async function fakeSystem(
  rootDev: string,
  disks: Record<string, { dev: string; sectors: number; parts?: Record<string, string>; slaves?: string[] }>,
): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "ferry-disks-"));
  await mkdir(join(root, "proc/self"), { recursive: true });
  await writeFile(
    join(root, "proc/self/mountinfo"),
    `21 26 0:20 / /proc rw,relatime - proc proc rw\n26 1 ${rootDev} / / rw,relatime - ext4 /dev/x rw\n`,
  );
  for (const [name, d] of Object.entries(disks)) {
    const dir = join(root, "sys/block", name);
    await mkdir(join(dir, "slaves"), { recursive: true });
    await writeFile(join(dir, "dev"), `${d.dev}\n`);
    await writeFile(join(dir, "size"), `${d.sectors}\n`);
    await writeFile(join(dir, "removable"), "0\n");
    for (const [part, dev] of Object.entries(d.parts ?? {})) {
      await mkdir(join(dir, part), { recursive: true });
      await writeFile(join(dir, part, "dev"), `${dev}\n`);
    }
    for (const slave of d.slaves ?? []) {
      // In sysfs a slave is a link to the partition's directory; a directory with `dev` is enough here.
      const [disk, part] = slave.split("/");
      const dev = disks[disk!]?.parts?.[part!] ?? "";
      await mkdir(join(dir, "slaves", part!), { recursive: true });
      await writeFile(join(dir, "slaves", part!, "dev"), `${dev}\n`);
    }
  }
  return root;
}
