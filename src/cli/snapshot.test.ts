import assert from "node:assert/strict";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { LocalDirectoryStore } from "../replicator/store/local-directory-store.ts";
import { StagingVolume } from "../replicator/volume.ts";
import { blockHashes } from "../wire/index.ts";
import type { CliContext } from "./context.ts";
import { main } from "./main.ts";

function capture(): { ctx: CliContext; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = "";
  let e = "";
  stdout.on("data", (d: Buffer) => (o += d.toString()));
  stderr.on("data", (d: Buffer) => (e += d.toString()));
  return {
    ctx: { stdout, stderr, isTTY: false, env: {}, signal: new AbortController().signal },
    out: () => o,
    err: () => e,
  };
}

const BS = 65536;
const SERVER = "s-snapcli000000000";

test("ferry snapshot list shows exclusive bytes; verify names a damaged block and exits 1", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-snapcli-"));
  try {
    const vol = await StagingVolume.open(new LocalDirectoryStore(dir), SERVER, "d0");
    await vol.startGeneration({
      generationId: "ee".repeat(16),
      diskSize: 16 * BS,
      logicalBlockSize: 512,
      hashBlockSize: BS,
    });
    const put = (b: number, fill: number) => {
      const data = Buffer.alloc(BS, fill);
      return vol.writeData(b * BS, data, blockHashes(data, BS));
    };
    for (let b = 0; b < 8; b++) await put(b, b + 1);
    await vol.flush();
    const s1 = await vol.snapshot({ barrierId: 1, reason: "initial-sync" });
    await put(0, 0x50);
    await put(1, 0x51);
    await vol.flush();
    const s2 = await vol.snapshot({ barrierId: 2, reason: "requested" });
    await put(1, 0x61);
    await vol.flush();
    const damaged = vol.locateBlock(5)!;
    await vol.close();

    const l = capture();
    assert.equal(
      await main(["snapshot", "list", "--source-server-id", SERVER, "--data-dir", dir, "--json"], l.ctx),
      0,
      l.err(),
    );
    const listed = JSON.parse(l.out()) as {
      snapshots: { snapshotId: string; reason: string; exclusiveBytes: number }[];
    };
    assert.deepEqual(
      listed.snapshots.map((s) => [s.snapshotId, s.reason, s.exclusiveBytes]),
      [
        [s1.snapshotId, "initial-sync", 2 * BS], // blocks 0 and 1 as first written: only s1 has them
        [s2.snapshotId, "requested", BS], // block 1 as rewritten before s2; block 0 is shared with the head
      ],
    );

    const ok = capture();
    assert.equal(
      await main(["snapshot", "verify", "--source-server-id", SERVER, "--data-dir", dir], ok.ctx),
      0,
      ok.err(),
    );
    assert.match(ok.out(), /8 stored blocks intact/);

    const fh = await open(join(dir, damaged.key), "r+");
    await fh.write(Buffer.from([0]), 0, 1, damaged.offset + 1000);
    await fh.close();
    const bad = capture();
    const code = await main(
      ["snapshot", "verify", "--source-server-id", SERVER, "--data-dir", dir, "--json"],
      bad.ctx,
    );
    assert.equal(code, 1);
    const report = JSON.parse(bad.out()) as { ok: boolean; snapshots: { damagedOffsets: number[] }[] };
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.snapshots.map((s) => s.damagedOffsets),
      [[5 * BS], [5 * BS]],
      "both snapshots share the damaged block and both say so",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
