import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { main } from "./main.ts";
import type { CliContext } from "./context.ts";
import { createScratch } from "../../test/support/loop.ts";
import { stagingBlockFile, startTestReplicator } from "../../test/support/data-plane.ts";

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

test("ferry demo --json: up, install, register, replicate to CONTINUOUS, identical", async () => {
  const c = capture();
  const code = await main(["demo", "--json", "--size", "32M"], c.ctx);
  assert.equal(code, 0, c.err());
  const summary = JSON.parse(c.out()) as Record<string, unknown>;
  assert.equal(summary.identical, true);
  assert.equal(summary.bytes, 32 * 1024 * 1024);
  assert.equal(typeof summary.seconds, "number");
  assert.match(String(summary.sourceServerId), /^s-[0-9a-zA-Z]{17}$/);
  assert.equal(summary.dataReplicationState, "CONTINUOUS");
  assert.equal(summary.lifeCycleState, "READY_FOR_TEST");
  // The demo ends with a test launch (the image equals the source), a cutover and finalize.
  const launch = summary.launch as Record<string, unknown>;
  assert.equal(launch.imageMatchesSource, true);
  assert.equal(launch.lifeCycleState, "CUTOVER");
  // The idle disk reaches fresh consistency points: both launches take a new snapshot.
  assert.equal(launch.freshSnapshots, 2);
  assert.match(String(launch.testInstanceId), /^i-[0-9a-f]{17}$/);
  assert.notEqual(launch.cutoverInstanceId, launch.testInstanceId);
  // After finalize the agent uninstalls itself (its state directory is gone).
  assert.equal(summary.agentUninstalled, true);
});

test("ferry demo --data-path --json replicates a real ext4 disk and reports it identical", async () => {
  const c = capture();
  const code = await main(["demo", "--data-path", "--json", "--size", "48M"], c.ctx);
  assert.equal(code, 0, c.err());
  const summary = JSON.parse(c.out()) as Record<string, unknown>;
  assert.equal(summary.identical, true);
  assert.equal(summary.bytes, 48 * 1024 * 1024);
  assert.equal(typeof summary.seconds, "number");
  assert.ok((summary.zeroBytes as number) > 0);
  assert.notEqual(summary.replicaFsckClean, false);
});

test("usage errors exit 2; user errors print one line without a stack", async () => {
  const c = capture();
  assert.equal(await main(["agent", "replicate"], c.ctx), 2);
  const d = capture();
  const code = await main(
    [
      "agent",
      "replicate",
      "--disk",
      "/nonexistent/disk.img",
      "--replicator",
      "127.0.0.1:1",
      "--replicator-fingerprint",
      "AA".repeat(32),
      "--token",
      "t",
      "--source-server-id",
      "s-x",
    ],
    d.ctx,
  );
  assert.equal(code, 1);
  assert.match(d.err(), /^ferry: disk \/nonexistent\/disk.img does not exist\n$/);
});

test("agent replicate and replicator verify through the CLI; damage makes verify fail", async () => {
  const scratch = await createScratch();
  const rep = await startTestReplicator(join(scratch.dir, "rep"));
  try {
    const disk = join(scratch.dir, "d.img");
    await writeFile(disk, Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(1024 * 1024)]));
    const a = capture();
    const code = await main(
      [
        "agent",
        "replicate",
        "--json",
        "--disk",
        `${disk}=d0`,
        "--replicator",
        `127.0.0.1:${rep.endpoint.port}`,
        "--replicator-fingerprint",
        rep.endpoint.fingerprint.replace(/:/g, "").toLowerCase(),
        "--token",
        rep.endpoint.token,
        "--source-server-id",
        "s-cli0000000000000",
        "--state-dir",
        join(scratch.dir, "state"),
      ],
      a.ctx,
    );
    assert.equal(code, 0, a.err());
    const done = a
      .out()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; disks?: { bytes: number }[] })
      .at(-1)!;
    assert.equal(done.event, "done");
    assert.equal(done.disks![0]!.bytes, 4 * 1024 * 1024);

    const verifyArgs = [
      "replicator",
      "verify",
      "--json",
      "--data-dir",
      rep.dataDir,
      "--source-server-id",
      "s-cli0000000000000",
      "--disk-id",
      "d0",
      "--source",
      disk,
    ];
    const v = capture();
    assert.equal(await main(verifyArgs, v.ctx), 0, v.err());
    assert.equal((JSON.parse(v.out()) as { ok: boolean }).ok, true);

    // Damage one byte of the staging volume: verify notices, names the block and exits 1.
    const stored = await stagingBlockFile(rep.dataDir, "s-cli0000000000000", "d0", 70000);
    const img = await open(stored.path, "r+");
    const byte = Buffer.alloc(1);
    await img.read(byte, 0, 1, stored.position);
    await img.write(Buffer.from([byte[0]! ^ 0x42]), 0, 1, stored.position);
    await img.close();
    const w = capture();
    assert.equal(await main(verifyArgs, w.ctx), 1);
    const report = JSON.parse(w.out()) as { ok: boolean; damagedBlocks: number; firstBadOffsets: number[] };
    assert.equal(report.ok, false);
    assert.equal(report.damagedBlocks, 1);
    assert.deepEqual(report.firstBadOffsets, [65536]);
  } finally {
    await rep.replicator.close();
    await scratch.cleanup();
  }
});
