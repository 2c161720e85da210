import { test } from "node:test";
import assert from "node:assert/strict";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import {
  attachLoop,
  createImage,
  createScratch,
  haveRoot,
  mkfs,
  mount,
  sh,
} from "../../../test/support/loop.ts";
import { openBlockSource } from "./block-source.ts";

const MiB = 1024 * 1024;

function pattern(tag: string, bytes: number): Buffer {
  const unit = Buffer.from(`${tag}:ferry-stale-probe:`.padEnd(64, "."));
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += unit.length) unit.copy(out, i);
  return out;
}

test("image files: size, contents, short read at the end", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    const data = Buffer.alloc(3 * MiB + 512);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    await writeFile(path, data);
    const src = await openBlockSource(path);
    try {
      assert.equal(src.kind, "file");
      assert.equal(src.size, data.length);
      const [buf] = src.allocBuffers(1, MiB);
      let offset = 0;
      const got: Buffer[] = [];
      for (;;) {
        const n = await src.read(buf!, offset, MiB);
        if (n === 0) break;
        got.push(Buffer.from(buf!.subarray(0, n)));
        offset += n;
      }
      assert.deepEqual(Buffer.concat(got), data);
    } finally {
      await src.close();
    }
  } finally {
    await scratch.cleanup();
  }
});

test("a missing disk is a clear user error", async () => {
  await assert.rejects(openBlockSource("/dev/ferry-no-such-disk"), (e: unknown) => {
    return (
      e instanceof FerryError && e.code === "DISK_NOT_FOUND" && e.message.includes("/dev/ferry-no-such-disk")
    );
  });
});

test(
  "reads of a block device under a mounted ext4 are never stale",
  { skip: haveRoot() ? false : "needs root for loop devices and mount" },
  async () => {
    const scratch = await createScratch();
    try {
      const image = await createImage(scratch, "fs.img", 64 * MiB);
      const dev = await attachLoop(scratch, image);
      await mkfs(dev, "ext4");
      const dir = await mount(scratch, dev);
      const file = join(dir, "data.bin");
      const before = pattern("BEFORE", MiB);
      const after = pattern("AFTER!", MiB);
      await writeFile(file, before);
      await sh("sync", []);

      const direct = await openBlockSource(dev);
      const cached = await openBlockSource(dev, { direct: "off" });
      try {
        assert.equal(direct.kind, "block-device");
        assert.equal(direct.direct, true);
        assert.equal(direct.size, 64 * MiB);
        // Find where the file's first block sits on the device.
        const [buf] = direct.allocBuffers(1, MiB);
        const needle = before.subarray(0, 64);
        let at = -1;
        for (let off = 0; off < direct.size && at < 0; off += MiB) {
          const n = await direct.read(buf!, off, MiB);
          const i = buf!.subarray(0, n).indexOf(needle);
          if (i >= 0 && i % 4096 === 0) at = off + i;
        }
        assert.ok(at >= 0, "the file's data was found on the device");

        // Pull the block into the device's page cache, then rewrite the file in place.
        const [cbuf] = cached.allocBuffers(1, 4096);
        await cached.read(cbuf!, at, 4096);
        assert.deepEqual(cbuf!.subarray(0, 64), needle);
        const fh = await open(file, "r+");
        await fh.write(after, 0, after.length, 0);
        await fh.sync();
        await fh.close();

        // The trap is real: the cached view of the device still shows the old bytes...
        await cached.read(cbuf!, at, 4096);
        assert.deepEqual(
          cbuf!.subarray(0, 64),
          needle,
          "buffered device reads are stale (the trap this guards)",
        );
        // ...and the direct reader sees what the filesystem wrote.
        await direct.read(buf!, at, 4096);
        const fresh = buf!.subarray(0, 4096);
        const firstDiff = fresh.findIndex((b, i) => b !== after[i]);
        assert.equal(
          firstDiff,
          -1,
          `direct read differs from the file at byte ${firstDiff} of the block at ${at}`,
        );
      } finally {
        await direct.close();
        await cached.close();
      }
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "shared buffers (for worker threads) are aligned for O_DIRECT and read the device",
  { skip: haveRoot() ? false : "needs root for loop devices" },
  async () => {
    const scratch = await createScratch();
    try {
      const image = await createImage(scratch, "shared.img", 8 * MiB);
      const data = pattern("SHARED", 8 * MiB);
      await writeFile(image, data);
      const dev = await attachLoop(scratch, image);
      const src = await openBlockSource(dev);
      try {
        assert.equal(src.direct, true);
        const bufs = src.allocBuffers(3, MiB, { shared: true });
        assert.ok(bufs.every((b) => b.buffer instanceof SharedArrayBuffer));
        for (let off = 0; off < 8 * MiB; off += 3 * MiB) {
          const n = await Promise.all(
            bufs.map((b, i) =>
              off + i * MiB < 8 * MiB ? src.read(b, off + i * MiB, MiB) : Promise.resolve(0),
            ),
          );
          n.forEach((got, i) => {
            if (got)
              assert.deepEqual(bufs[i]!.subarray(0, got), data.subarray(off + i * MiB, off + i * MiB + got));
          });
        }
      } finally {
        await src.close();
      }
    } finally {
      await scratch.cleanup();
    }
  },
);

test("close waits for reads in flight, and every caller of close returns", async () => {
  const scratch = await createScratch();
  try {
    const path = join(scratch.dir, "disk.img");
    await writeFile(path, Buffer.alloc(8 * MiB, 0x5a));
    const src = await openBlockSource(path);
    const bufs = src.allocBuffers(4, 2 * MiB);
    const reads = bufs.map((b, i) => src.read(b, i * 2 * MiB, 2 * MiB));
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error("a close never returned")), 5000).unref(),
    );
    // Both closes start while the reads are in flight.
    await Promise.race([Promise.all([src.close(), src.close()]), timeout]);
    assert.deepEqual(await Promise.all(reads), [2 * MiB, 2 * MiB, 2 * MiB, 2 * MiB]);
    for (const b of bufs) assert.ok(b.subarray(0, 2 * MiB).every((x) => x === 0x5a));
  } finally {
    await scratch.cleanup();
  }
});
