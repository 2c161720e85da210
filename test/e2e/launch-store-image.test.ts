/**
 * A launch from a real staging volume (StagingVolume in a LocalDirectoryStore,
 * read through StoreCatalog: O_DIRECT segment reads, verification on a worker,
 * lent buffers) to a raw image written with O_DIRECT: byte-identical with zero
 * blocks as holes and a disk size that is not a multiple of 4 KiB; one damaged
 * byte in a segment fails the launch with SNAPSHOT_DAMAGED at that block's
 * offset and leaves no instance behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createLauncher } from "../../src/launch/index.ts";
import type { LaunchRequest } from "../../src/model/launch.ts";
import type { FerryError } from "../../src/lib/errors.ts";
import { StoreCatalog } from "../../src/replicator/snapshots.ts";
import { LocalDirectoryStore } from "../../src/replicator/store/local-directory-store.ts";
import { StagingVolume } from "../../src/replicator/volume.ts";
import { blockHashes } from "../../src/wire/index.ts";
import { createScratch } from "../support/loop.ts";

const SERVER = "s-0123456789abcdef0";
const BS = 64 * 1024;
const MiB = 1024 * 1024;
let n = 0;

function request(): LaunchRequest {
  return {
    jobID: "mgnjob-0123456789abcdef0",
    sourceServerID: SERVER,
    initiatedBy: "START_TEST",
    instanceId: `i-${(0xe2e00 + n++).toString(16).padStart(17, "0")}`,
    replicating: false,
    launchConfiguration: { ferry: { target: "image" } },
    log: async () => {},
    signal: new AbortController().signal,
  };
}

/** 9 MiB + 2.5 KiB: random, text, zero stretches, data in the last partial block. */
function source(): Buffer {
  const buf = Buffer.alloc(9 * MiB + 2560);
  randomBytes(3 * MiB + 5 * BS).copy(buf, BS);
  Buffer.from("launch from the staging store\n".repeat(60_000)).copy(buf, 5 * MiB);
  randomBytes(2000).copy(buf, buf.length - 2000);
  return buf;
}

/** Writes `disk` to a staging volume in records of up to 1 MiB (as the replicator would) and snapshots it. */
async function stage(root: string, disk: Buffer): Promise<{ vol: StagingVolume; snapshotId: string }> {
  const vol = await StagingVolume.open(new LocalDirectoryStore(root), SERVER, "vda");
  await vol.startGeneration({
    generationId: "e2".repeat(16),
    diskSize: disk.length,
    logicalBlockSize: 512,
    hashBlockSize: BS,
  });
  for (let off = 0; off < disk.length; off += MiB) {
    const part = disk.subarray(off, Math.min(disk.length, off + MiB));
    if (!part.equals(Buffer.alloc(part.length))) await vol.writeData(off, part, blockHashes(part, BS));
  }
  await vol.flush({ durableSeq: 1, resumeOffset: disk.length, initialSyncComplete: true });
  const m = await vol.snapshot({ barrierId: 1, reason: "requested" });
  return { vol, snapshotId: m.snapshotId };
}

test("a staging volume launches to a byte-identical sparse raw image; a damaged byte fails it loudly", async () => {
  const s = await createScratch("ferry-e2e-launch-store-");
  try {
    const disk = source();
    const root = join(s.dir, "store");
    const { vol } = await stage(root, disk);
    const damagedBlock = (5 * MiB) / BS + 2;
    const at = vol.locateBlock(damagedBlock)!;
    await vol.close();
    const catalog = new StoreCatalog(new LocalDirectoryStore(root));
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    try {
      const out = await launcher.launch(request());
      const image = out.details.disks[0]!.path;
      assert.ok((await readFile(image)).equals(disk), "the launched image differs from the source");
      const st = await stat(image);
      assert.ok(st.blocks * 512 < disk.length - 3 * MiB, `allocated ${st.blocks * 512} of ${disk.length}`);

      const fh = await open(join(root, at.key), "r+");
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at.offset + 1000);
      b[0] = b[0]! ^ 0x5a;
      await fh.write(b, 0, 1, at.offset + 1000);
      await fh.close();
      const req = request();
      await assert.rejects(launcher.launch(req), (e: FerryError) => {
        assert.equal(e.code, "SNAPSHOT_DAMAGED");
        assert.match(e.message, new RegExp(`offset ${damagedBlock * BS}\\b`));
        return true;
      });
      assert.equal(existsSync(join(s.dir, "launch", "instances", SERVER, req.instanceId)), false);
    } finally {
      await launcher.close();
    }
  } finally {
    await s.cleanup();
  }
});
