/**
 * An idle source still gets fresh snapshots: after the writes stop, the
 * continuous sender keeps marking consistency points (a barrier, no data), so
 * a launch's takeSnapshot — and the point-in-time policy — gets the disk as
 * it now is, not the snapshot from before its last writes. With the eBPF
 * tracker every point of an idle disk is consistent; the scan tracker, which
 * learns of writes only by reading the disk, vouches for one once a whole
 * pass that began after everything was replicated found nothing changed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { replicateDisk } from "../../src/agent/sync.ts";
import { findBpftrace } from "../../src/agent/tracker/bpftrace.ts";
import { EbpfTracker, ScanTracker, type ChangeTracker } from "../../src/agent/tracker/index.ts";
import { attachLoop, createScratch, haveRoot, type Scratch } from "../support/loop.ts";
import { startTestReplicator, writeMixedImage, type TestReplicator } from "../support/data-plane.ts";

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const CONSISTENCY_INTERVAL_MS = 300;

const ebpfSkip = !haveRoot()
  ? "needs root (loop device, eBPF)"
  : !(await findBpftrace())
    ? "needs bpftrace (apt-get install bpftrace)"
    : false;

async function sha(read: (offset: number, length: number) => Promise<Buffer>): Promise<string> {
  return createHash("sha256")
    .update(await read(0, SIZE))
    .digest("hex");
}

async function snapshotSha(rep: TestReplicator, id: string, snapshotId: string): Promise<string> {
  const reader = await rep.replicator.catalog.open(id, "sda", snapshotId);
  try {
    return await sha((o, l) => reader.read(o, l));
  } finally {
    await reader.close();
  }
}

async function diskSha(path: string): Promise<string> {
  const fh = await open(path, "r");
  try {
    return await sha(async (o, l) => {
      const buf = Buffer.alloc(l);
      await fh.read(buf, 0, l, o);
      return buf;
    });
  } finally {
    await fh.close();
  }
}

/** Replicates `device` continuously, writes to it after the initial sync, then leaves it idle and asks for snapshots. */
async function idleScenario(
  s: Scratch,
  id: string,
  device: string,
  tracker: ChangeTracker,
  budgetMs: number,
): Promise<void> {
  const rep = await startTestReplicator(join(s.dir, "replicator"));
  s.defer(() => rep.replicator.close());
  await tracker.start();
  s.defer(() => tracker.stop());
  const stop = new AbortController();
  const sync = replicateDisk({
    sourcePath: device,
    sourceServerId: id,
    diskId: "sda",
    endpoint: rep.endpoint,
    stateDir: join(s.dir, "agent"),
    signal: stop.signal,
    continuous: { tracker, consistencyIntervalMs: CONSISTENCY_INTERVAL_MS },
  });
  sync.catch(() => {});
  s.defer(async () => {
    stop.abort();
    await sync.catch(() => undefined);
  });
  for (let i = 0; i < 300 && !(await rep.replicator.catalog.list(id)).length; i++)
    await new Promise((r) => setTimeout(r, 100));
  const [initial] = await rep.replicator.catalog.list(id);
  assert.ok(initial, "the initial sync left a snapshot");

  // Writes after the initial sync, then nothing.
  const fh = await open(device, "r+");
  try {
    for (const at of [MiB, 5 * MiB + 4096]) await fh.write(randomBytes(96 * 1024), 0, 96 * 1024, at);
    await fh.sync();
  } finally {
    await fh.close();
  }
  const want = await diskSha(device);
  assert.notEqual(await snapshotSha(rep, id, initial.snapshotId), want);

  // A launch's request, while the disk is idle. A barrier the agent sent just before the writes
  // completed may still be on its way and answer the first request with the older disk: ask again
  // (a few times at most) until a snapshot shows the disk after its last writes.
  const started = Date.now();
  let fresh: Awaited<ReturnType<NonNullable<typeof rep.replicator.catalog.takeSnapshot>>>[number] | undefined;
  const seen: string[] = [];
  for (let attempt = 0; attempt < 4 && !fresh; attempt++) {
    const [snap] = await rep.replicator.catalog.takeSnapshot!(id, { timeoutMs: 20_000 });
    assert.ok(snap);
    assert.equal(snap.reason, "requested");
    if ((await snapshotSha(rep, id, snap.snapshotId)) === want) fresh = snap;
    else seen.push(snap.snapshotId);
  }
  const tookMs = Date.now() - started;
  assert.ok(fresh, `no snapshot showed the disk after its last writes (${seen.join(", ")})`);
  assert.ok(tookMs < budgetMs, `the snapshot took ${tookMs} ms (budget ${budgetMs} ms)`);

  // Still idle: the next request is answered too, at a later point, with the same disk.
  const [again] = await rep.replicator.catalog.takeSnapshot!(id, { timeoutMs: 20_000 });
  assert.ok(again && again.barrierId > fresh.barrierId);
  assert.equal(await snapshotSha(rep, id, again.snapshotId), want);
}

test(
  "scan tracker: an idle disk gets a fresh snapshot after its last writes",
  { timeout: 90_000 },
  async () => {
    const s = await createScratch("ferry-idle-scan-");
    try {
      const disk = join(s.dir, "disk.img");
      await writeMixedImage(disk, SIZE);
      const scanIntervalMs = 200;
      const tracker = new ScanTracker({
        devicePath: disk,
        stateDir: join(s.dir, "tracker"),
        intervalMs: scanIntervalMs,
      });
      // Two passes of a small disk and a consistency interval, with slack for a loaded machine.
      await idleScenario(s, "s-1d1e0000000000001", disk, tracker, 10_000);
    } finally {
      await s.cleanup();
    }
  },
);

test(
  "eBPF tracker: an idle block device gets a fresh snapshot after its last writes",
  { skip: ebpfSkip, timeout: 120_000 },
  async () => {
    const s = await createScratch("ferry-idle-ebpf-");
    try {
      const image = join(s.dir, "disk.img");
      await writeMixedImage(image, SIZE);
      const dev = await attachLoop(s, image);
      const tracker = new EbpfTracker({ devicePath: dev, stateDir: join(s.dir, "tracker") });
      // Every point of an idle disk is consistent: the next one, within the interval plus the tracer's settle.
      await idleScenario(s, "s-1d1e0000000000002", dev, tracker, 10_000);
    } finally {
      await s.cleanup();
    }
  },
);
