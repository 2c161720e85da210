/**
 * The image writer's fallback when O_DIRECT writes start failing with EINVAL
 * part-way through a launch, under a real condition: an XFS filesystem with
 * 16 KiB blocks on a loop device with 16 KiB logical sectors. The kernel takes
 * the O_DIRECT open and every write aligned to 16 KiB, but refuses (EINVAL) a
 * write that is only 4 KiB-aligned — the writer's own alignment. The disk is
 * all data up to a 4 KiB zero block in its fourth chunk: the writer leaves
 * that block as a hole, so the next run starts 4 KiB past a 16 KiB boundary
 * and its O_DIRECT write fails. The launch must finish through the page
 * cache, and the image read back from the remounted filesystem must hash the
 * same as the source. Both ways a reader hands bytes over are run: lent
 * bytes copied by the writer (`readWith`), and bytes read into the writer's
 * buffers (`readInto`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { dataRuns } from "../wire/index.ts";
import { materializeDisk } from "./materialize.ts";
import type { SnapshotExtent, SnapshotReader } from "../model/staging.ts";
import { createImage, createScratch, haveRoot, sh, type Scratch } from "../../test/support/loop.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const SECTOR = 16 * KiB;
const CHUNK = MiB;
/** The 4 KiB zero block: in the fourth chunk, so earlier chunks are written with O_DIRECT first. */
const HOLE = 3 * CHUNK + 64 * KiB;

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A reader over `data` with 4 KiB blocks, one extent of data; `into` adds readInto. */
function memoryReader(data: Buffer, into: boolean): SnapshotReader {
  const reader: SnapshotReader = {
    info: {
      snapshotId: "snap-fallback",
      sourceServerId: "s-0123456789abcdef0",
      diskId: "vda",
      createdAt: new Date(0).toISOString(),
      barrierId: 1,
      diskSize: data.length,
      logicalBlockSize: 512,
      blockSize: 4 * KiB,
      reason: "requested",
    },
    async read(offset, length) {
      return Buffer.from(data.subarray(offset, offset + length));
    },
    async readWith(offset, length, use) {
      return use(Buffer.from(data.subarray(offset, offset + length)));
    },
    async *extents(): AsyncIterable<SnapshotExtent> {
      yield { offset: 0, length: data.length, zero: false };
    },
    async close() {},
  };
  if (into)
    reader.readInto = async (offset, length, target) => {
      const bytes = data.subarray(offset, offset + length);
      const runs = dataRuns(bytes, 4 * KiB);
      for (const [a, b] of runs) bytes.copy(target, a, a, b);
      return runs;
    };
  return reader;
}

/** XFS with 16 KiB blocks on a 16 KiB-sector loop device, mounted; undefined where this kernel cannot. */
async function largeSectorFs(s: Scratch): Promise<{ dev: string; mnt: string } | undefined> {
  const image = await createImage(s, "lbs.img", 512 * MiB);
  let dev: string;
  try {
    dev = (await sh("losetup", ["--find", "--show", "--sector-size", String(SECTOR), image])).trim();
  } catch {
    return undefined;
  }
  s.defer(() => sh("losetup", ["-d", dev]));
  const mnt = join(s.dir, "mnt");
  await sh("mkdir", ["-p", mnt]);
  try {
    await sh("mkfs.xfs", ["-q", "-f", "-b", `size=${SECTOR}`, "-s", `size=${SECTOR}`, dev]);
    await sh("mount", [dev, mnt]);
  } catch {
    return undefined;
  }
  s.defer(async () => {
    await sh("umount", [mnt]).catch(() => sh("umount", ["-l", mnt]));
  });
  return { dev, mnt };
}

for (const into of [false, true]) {
  test(
    `O_DIRECT writes refused with EINVAL mid-launch fall back to the page cache, bytes exact (${into ? "readInto" : "readWith"})`,
    { skip: !haveRoot() && "needs root (loop device, mount)" },
    async (t) => {
      const s = await createScratch("ferry-image-fallback-");
      try {
        const fs = await largeSectorFs(s);
        if (!fs) {
          t.skip("this kernel has no 16 KiB-sector loop device or XFS with 16 KiB blocks");
          return;
        }
        const data = randomBytes(6 * CHUNK + 8 * KiB);
        data.fill(0, HOLE, HOLE + 4 * KiB);
        const path = join(fs.mnt, "vda.raw");
        // One read and one write at a time: the chunks before the hole are written (directly) first.
        const r = await materializeDisk(memoryReader(data, into), path, undefined, {
          chunkBytes: CHUNK,
          readsInFlight: 1,
          image: { writesInFlight: 1 },
        });
        assert.equal(r.direct, false, "the writer fell back to the page cache");
        assert.equal(r.dataBytes, data.length - 4 * KiB, "every byte but the hole written");
        assert.equal(r.directBytes, HOLE, "O_DIRECT wrote everything up to the hole, then nothing");
        // What is on the device, not in this mount's page cache.
        await sh("umount", [fs.mnt]);
        await sh("mount", [fs.dev, fs.mnt]);
        const image = await readFile(path);
        assert.equal(image.length, data.length);
        assert.equal(sha256(image), sha256(data), "the image differs from the snapshot");
      } finally {
        await s.cleanup();
      }
    },
  );
}
