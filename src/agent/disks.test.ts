import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chooseDisks, listDisks, rootDeviceNumber } from "./disks.ts";
import { FerryError } from "../lib/errors.ts";
import { fakeSystem } from "../../test/support/fake-sys.ts";

test("rootDeviceNumber reads the device of / from mountinfo and ignores virtual roots", () => {
  assert.equal(rootDeviceNumber("26 1 254:0 / / rw - ext4 /dev/vda rw\n"), "254:0");
  assert.equal(rootDeviceNumber("26 1 0:31 / / rw - overlay overlay rw\n"), undefined);
  assert.equal(rootDeviceNumber("26 1 8:1 / /mnt rw - ext4 /dev/sda1 rw\n"), undefined);
});

test("the root disk is found through a partition; virtual devices and empty loops are left out", async () => {
  const root = await fakeSystem("8:2", {
    sda: { dev: "8:0", sectors: 2048, parts: { sda1: "8:1", sda2: "8:2" } },
    sdb: { dev: "8:16", sectors: 4096 },
    loop0: { dev: "7:0", sectors: 0 },
    zram0: { dev: "253:0", sectors: 999 },
  });
  try {
    const disks = await listDisks({ root });
    assert.deepEqual(
      disks.map((d) => [d.deviceName, d.bytes, d.root]),
      [
        ["/dev/sda", 2048 * 512, true],
        ["/dev/sdb", 4096 * 512, false],
      ],
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("the root disk is found under device-mapper (LVM)", async () => {
  const root = await fakeSystem("254:0", {
    "dm-0": { dev: "254:0", sectors: 100, slaves: ["vdb/vdb1"] },
    vda: { dev: "252:0", sectors: 100 },
    vdb: { dev: "252:16", sectors: 200, parts: { vdb1: "252:17" } },
  });
  try {
    const disks = await listDisks({ root });
    assert.deepEqual(
      disks.filter((d) => d.root).map((d) => d.deviceName),
      ["/dev/vdb"],
    );
    assert.ok(!disks.some((d) => d.deviceName === "/dev/dm-0"));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("chooseDisks always adds the root disk, takes image files, refuses what does not exist", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-choose-"));
  try {
    const image = join(dir, "disk.img");
    await writeFile(image, Buffer.alloc(8192));
    const available = [
      { deviceName: "/dev/sda", bytes: 100, root: true, removable: false },
      { deviceName: "/dev/sdb", bytes: 200, root: false, removable: false },
    ];
    assert.deepEqual(await chooseDisks(available, undefined), [
      { deviceName: "/dev/sda", bytes: 100 },
      { deviceName: "/dev/sdb", bytes: 200 },
    ]);
    assert.deepEqual(await chooseDisks(available, [image]), [
      { deviceName: "/dev/sda", bytes: 100 },
      { deviceName: image, bytes: 8192 },
    ]);
    await assert.rejects(chooseDisks(available, [join(dir, "missing")]), (err: unknown) => {
      assert.ok(err instanceof FerryError);
      assert.equal(err.code, "DEVICE_NOT_FOUND");
      return true;
    });
    await assert.rejects(chooseDisks(available, [dir]), { code: "NOT_A_DISK" });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
