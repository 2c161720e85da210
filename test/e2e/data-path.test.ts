import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
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
    assert.equal(await sha256File(stagingImage(rep.dataDir, SERVER, "disk0")), await sha256File(disk));
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
