import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { open, readFile, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { FerryError } from "../../src/lib/errors.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import {
  sha256File,
  stagingImage,
  startTestReplicator,
  writeMixedImage,
  type TestReplicator,
} from "../support/data-plane.ts";

const MiB = 1024 * 1024;
const SERVER = "s-0123456789abcdefg";

describe("data path: agent → TLS → replicator → staging volume", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch();
    rep = await startTestReplicator(join(scratch.dir, "replicator"));
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("a mixed disk arrives byte-identical, zeros never sent as data", async () => {
    const disk = join(scratch.dir, "mixed.img");
    await writeMixedImage(disk, 24 * MiB + 64 * 1024);
    const r = await replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "disk0",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "agent-state"),
    });
    assert.equal(r.bytes, 24 * MiB + 64 * 1024);
    assert.equal(await sha256File(await stagingImage(rep.dataDir, SERVER, "disk0")), await sha256File(disk));
    // Half the stripes are zeros: they travel as ZERO ranges, not as DATA.
    assert.equal(r.zeroBytes, 12 * MiB + 64 * 1024); // stripes 0 and 2 of every 4, and the 64 KiB tail
    assert.equal(r.dataBytes, r.bytes - r.zeroBytes);
    // The text stripes compress.
    assert.ok(r.compressedBytes < r.compressedRawBytes);
    assert.ok(r.wireBytes < r.dataBytes);
    const meta = JSON.parse(
      await readFile(join(rep.dataDir, "volumes", SERVER, "disk0", "meta.json"), "utf8"),
    ) as { initialSyncComplete: boolean; generationId: string };
    assert.equal(meta.initialSyncComplete, true);
    assert.equal(meta.generationId, r.generationId);
  });

  test("re-running after a completed sync rescans and sends only the blocks that changed", async () => {
    const disk = join(scratch.dir, "rescan.img");
    const size = 16 * MiB;
    await writeFile(disk, randomBytes(size));
    const base = {
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "rescan",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "rescan-state"),
    };
    const first = await replicateDisk(base);
    assert.equal(first.mode, "initial");
    // Change 5 blocks (one to zeros) and a few bytes of another.
    const fh = await open(disk, "r+");
    for (const block of [3, 17, 100, 101]) await fh.write(randomBytes(65536), 0, 65536, block * 65536);
    await fh.write(Buffer.alloc(65536), 0, 65536, 200 * 65536);
    await fh.write(Buffer.from("changed"), 0, 7, 250 * 65536 + 1000);
    await fh.close();
    const second = await replicateDisk(base);
    assert.equal(second.mode, "rescan");
    assert.equal(second.rescannedBytes, size);
    assert.equal(second.dataBytes, 5 * 65536, "only the changed data blocks travel");
    assert.equal(second.zeroBytes, 65536, "the zeroed block travels as a ZERO range");
    assert.equal(await sha256File(await stagingImage(rep.dataDir, SERVER, "rescan")), await sha256File(disk));
    const third = await replicateDisk(base);
    assert.equal(third.dataBytes + third.zeroBytes, 0, "nothing changed, nothing sent");
  });

  test("a wrong token is refused with a clear error", async () => {
    const disk = join(scratch.dir, "small.img");
    await writeMixedImage(disk, 2 * MiB);
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "disk1",
        endpoint: { ...rep.endpoint, token: "wrong" },
        stateDir: join(scratch.dir, "agent-state"),
      }),
      (e: unknown) => e instanceof FerryError && e.code === "AUTH_FAILED" && /token/.test(e.message),
    );
  });

  test("a wrong fingerprint is refused before anything is sent", async () => {
    const disk = join(scratch.dir, "small.img");
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "disk1",
        endpoint: { ...rep.endpoint, fingerprint: "AB".repeat(32) },
        stateDir: join(scratch.dir, "agent-state"),
      }),
      (e: unknown) =>
        e instanceof FerryError &&
        e.code === "REPLICATOR_FINGERPRINT_MISMATCH" &&
        e.message.includes(rep.endpoint.fingerprint),
    );
  });

  test("a replicator that is not listening is named", async () => {
    const disk = join(scratch.dir, "small.img");
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "disk1",
        endpoint: { ...rep.endpoint, port: 1 },
        stateDir: join(scratch.dir, "agent-state"),
        maxReconnects: 0,
      }),
      (e: unknown) =>
        e instanceof FerryError && e.code === "REPLICATOR_REFUSED" && e.message.includes("127.0.0.1:1"),
    );
  });
});
