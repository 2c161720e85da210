/**
 * Snapshots through the real data path (quality.md rows 10, 11, 13): a source
 * writes self-verifying blocks while snapshots are asked for; every snapshot
 * must equal the source at the consistency point it names. A replicator in
 * its own process is killed with SIGKILL mid-stream: every acknowledged write
 * survives and every snapshot still reads back exactly, block-verified.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ReplicatorEndpoint } from "../../src/agent/client.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { openCatalog } from "../../src/replicator/snapshots.ts";
import { S3Store } from "../../src/replicator/store/s3-store.ts";
import { exportHead, verifyVolume } from "../../src/replicator/verify.ts";
import { BarrierFlags, Compression, HelloMode, PROTOCOL_VERSION, blockHashes } from "../../src/wire/index.ts";
import { startTestReplicator, type TestReplicator } from "../support/data-plane.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import { rawConnect, type RawSession } from "../support/raw-client.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../support/s3rver.ts";
import { BLOCK, checkBlocks, makeBlock, writeWorkload } from "../support/workload.ts";

const MiB = 1024 * 1024;
const HBS = 65536;
const SIZE = 8 * MiB;
const SERVER = "s-snapshots00000000";

/** A source disk in memory that streams its writes as a correct agent would, and remembers every state. */
class Source {
  readonly image = Buffer.alloc(SIZE);
  readonly diskId: string;
  readonly generationId = Buffer.alloc(16, 7);
  s!: RawSession;
  seq = 0;
  barrierId = 0;
  /** The image at each barrier. */
  readonly states = new Map<number, Buffer>();
  /** Every version of each hash block sent: [seq, bytes]. */
  readonly versions = new Map<number, [number, Buffer][]>();
  private gen = 1;

  constructor(diskId: string) {
    this.diskId = diskId;
  }

  async connect(ep: ReplicatorEndpoint, mode: number): Promise<{ durableSeq: number }> {
    this.s = await rawConnect(ep);
    this.s.conn.send({
      type: "HELLO",
      protocolVersion: PROTOCOL_VERSION,
      mode: mode as 0 | 1,
      sourceServerId: SERVER,
      diskId: this.diskId,
      diskSize: BigInt(SIZE),
      logicalBlockSize: 512,
      hashBlockSize: HBS,
      generationId: this.generationId,
      token: ep.token,
    });
    const w = await this.s.next("WELCOME");
    return { durableSeq: w.type === "WELCOME" ? Number(w.durableSeq) : 0 };
  }

  /** The initial sync: a quarter of the groups stay zero. */
  initialSync(): void {
    for (let g = 0; g < SIZE / HBS; g++) {
      if (g % 4 === 1) {
        const seq = ++this.seq;
        this.versions.set(g, [[seq, Buffer.alloc(HBS)]]); // zeros are a version too
        this.s.conn.send({
          type: "ZERO",
          seq: BigInt(seq),
          offset: BigInt(g * HBS),
          length: BigInt(HBS),
        });
        continue;
      }
      for (let at = 0; at < HBS; at += BLOCK) {
        makeBlock(this.diskId, g * HBS + at, 1, 1, g % 2 === 0).copy(this.image, g * HBS + at);
      }
      this.send(g);
    }
    this.barrier(BarrierFlags.INITIAL_SYNC_COMPLETE | BarrierFlags.CONSISTENT);
  }

  /** Rewrites `n` random 4 KiB blocks (new generation each) and sends their hash blocks. */
  mutate(n: number): void {
    this.gen++;
    const groups = new Set<number>();
    for (let i = 0; i < n; i++) {
      const off = Math.floor(Math.random() * (SIZE / BLOCK)) * BLOCK;
      makeBlock(this.diskId, off, this.gen, this.gen, i % 2 === 0).copy(this.image, off);
      groups.add(Math.floor(off / HBS));
    }
    for (const g of groups) this.send(g);
  }

  private send(g: number): void {
    const data = Buffer.from(this.image.subarray(g * HBS, (g + 1) * HBS));
    const seq = ++this.seq;
    let list = this.versions.get(g);
    if (!list) this.versions.set(g, (list = []));
    list.push([seq, data]);
    this.s.conn.send({
      type: "DATA",
      seq: BigInt(seq),
      offset: BigInt(g * HBS),
      length: HBS,
      compression: Compression.NONE,
      hashes: blockHashes(data, HBS),
      payload: data,
    });
  }

  barrier(flags: number): number {
    const id = ++this.barrierId;
    this.states.set(id, Buffer.from(this.image));
    this.s.conn.send({
      type: "BARRIER",
      seq: BigInt(++this.seq),
      barrierId: BigInt(id),
      flags,
      timestampMs: BigInt(Date.now()),
    });
    return id;
  }

  acked(): number {
    let max = 0;
    for (const f of this.s.frames) if (f.type === "ACK") max = Math.max(max, Number(f.seq));
    return max;
  }

  async waitAck(seq: number, timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.acked() < seq) {
      if (Date.now() > deadline) throw new Error(`no ACK of ${seq} (last ${this.acked()})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Every snapshot in the store equals the source at its barrier, block-verified, no torn block. */
async function assertSnapshotsExact(store: string, src: Source, scratch: Scratch): Promise<number> {
  const catalog = openCatalog(store);
  const infos = (await catalog.list(SERVER)).filter((i) => i.diskId === src.diskId);
  for (const info of infos) {
    const r = await catalog.open(SERVER, src.diskId, info.snapshotId);
    const got = await r.read(0, SIZE);
    await r.close();
    const want = src.states.get(info.barrierId);
    assert.ok(want, `snapshot ${info.snapshotId} names barrier ${info.barrierId}, which the source sent`);
    assert.ok(
      got.equals(want),
      `snapshot ${info.snapshotId} (barrier ${info.barrierId}) equals the source at that point`,
    );
    const file = join(scratch.dir, `${info.snapshotId}.img`);
    await writeFile(file, got);
    const check = await checkBlocks(file, src.diskId, SIZE);
    assert.equal(check.badCount, 0, `no torn block in ${info.snapshotId}`);
  }
  await catalog.close();
  return infos.length;
}

/** Polls `find` until it returns a snapshot (bounded: 10 s). */
async function waitForSnapshot<T>(find: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = await find();
    if (found) return found;
    if (Date.now() > deadline) throw new Error("the snapshot did not appear within 10 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("snapshots on a live replicator", { timeout: 120_000 }, () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  before(async () => {
    scratch = await createScratch("ferry-snapshots-");
    rep = await startTestReplicator(join(scratch.dir, "replicator"));
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("snapshots asked for while the source writes equal the source at their consistency point", async () => {
    const src = new Source("live");
    await src.connect(rep.endpoint, HelloMode.NEW);
    src.initialSync();
    await src.waitAck(src.seq);
    const catalog = rep.replicator.catalog;
    // The ACK of the initial sync's barrier comes once its writes are durable; its snapshot
    // follows. A request made before that snapshot exists is served by it, so wait for it.
    const initial = await waitForSnapshot(async () =>
      (await catalog.list(SERVER)).find((i) => i.diskId === src.diskId && i.reason === "initial-sync"),
    );
    assert.equal(initial.barrierId, 1, "the initial sync's snapshot is at its barrier");
    const asked: Promise<{ barrierId: number; snapshotId: string }[]>[] = [];
    for (let round = 0; round < 40; round++) {
      src.mutate(24);
      if (round % 5 === 2) asked.push(catalog.takeSnapshot!(SERVER, { timeoutMs: 20_000 }));
      // Barriers that are not consistency points never carry a snapshot.
      src.barrier(round % 3 === 0 ? 0 : BarrierFlags.CONSISTENT);
      // The source moves on at its own pace: a request is answered at a consistency point after it.
      if (round % 5 === 3) await src.waitAck(src.seq);
    }
    await src.waitAck(src.seq);
    const taken = (await Promise.all(asked)).flat();
    assert.equal(taken.length, asked.length, "each request got the disk's snapshot");
    const inconsistent = new Set([...src.states.keys()].filter((id) => id > 1 && (id - 2) % 3 === 0));
    for (const t of taken)
      assert.ok(!inconsistent.has(t.barrierId), `snapshot at consistent barrier (${t.barrierId})`);
    const n = await assertSnapshotsExact(rep.dataDir, src, scratch);
    const distinct = new Set(taken.map((t) => t.snapshotId)).size;
    assert.ok(distinct >= 2, `the requests were served by ${distinct} snapshots at later consistency points`);
    assert.ok(
      !taken.some((t) => t.snapshotId === initial.snapshotId),
      "requests are served after the initial sync",
    );
    assert.ok(n >= 1 + distinct, `${n} snapshots: the initial sync's and the requested ones`);
    src.s.conn.close();
    await src.s.closed;
  });

  test("takeSnapshot without a consistency point times out with SNAPSHOT_TIMEOUT", async () => {
    await assert.rejects(
      rep.replicator.catalog.takeSnapshot!(SERVER, { timeoutMs: 300 }),
      /no consistency point came/,
    );
  });
});

describe("replicator kill -9 with snapshots (fault row 10)", { timeout: 180_000 }, () => {
  let scratch: Scratch;
  const children: ChildProcess[] = [];
  before(async () => {
    scratch = await createScratch("ferry-snapkill-");
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await scratch.cleanup();
  });

  async function startChild(dataDir: string): Promise<{ child: ChildProcess; endpoint: ReplicatorEndpoint }> {
    const child = spawn(
      process.execPath,
      [
        "--disable-warning=ExperimentalWarning",
        join(import.meta.dirname, "..", "support", "snapshot-replicator.ts"),
        dataDir,
        "11",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(child);
    const line = await new Promise<string>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("the replicator did not start")), 20_000);
      child.stdout!.on("data", (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf("\n");
        if (i >= 0) {
          clearTimeout(timer);
          resolve(buf.slice(0, i));
        }
      });
      child.once("exit", () => reject(new Error("the replicator exited")));
    });
    const j = JSON.parse(line) as { port: number; token: string; fingerprint: string };
    return {
      child,
      endpoint: { host: "127.0.0.1", port: j.port, token: j.token, fingerprint: j.fingerprint },
    };
  }

  test("every acknowledged write survives; every snapshot (taken, expired, collected by policy) reads back exactly", async () => {
    const dataDir = join(scratch.dir, "replicator");
    const first = await startChild(dataDir);
    const src = new Source("crash");
    await src.connect(first.endpoint, HelloMode.NEW);
    src.initialSync();
    // Each consistency point is 11 "minutes" after the last: the default policy snapshots, expires and collects.
    for (let round = 0; round < 60; round++) {
      src.mutate(16);
      src.barrier(BarrierFlags.CONSISTENT);
      if (round === 45) await src.waitAck(src.seq);
    }
    src.mutate(64); // in flight when the process dies
    await new Promise((r) => setTimeout(r, 15));
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    const acked = src.acked();
    assert.ok(acked > 0);

    // Snapshots: each equals the source at its barrier, verified block by block.
    const n = await assertSnapshotsExact(dataDir, src, scratch);
    assert.ok(n >= 5, `${n} snapshots retained`);
    const meta = JSON.parse(
      await readFile(join(dataDir, "volumes", SERVER, "crash", "meta.json"), "utf8"),
    ) as {
      durableSeq: number;
    };
    assert.ok(meta.durableSeq >= acked, `durable ${meta.durableSeq} ≥ acknowledged ${acked}`);

    // The head: every block holds its last acknowledged version or a later one, never older, never torn.
    const head = join(scratch.dir, "head.img");
    await exportHead(dataDir, SERVER, "crash", head);
    const bytes = await readFile(head);
    for (const [g, list] of src.versions) {
      const lastAcked = list.filter(([seq]) => seq <= acked).at(-1)?.[0] ?? 0;
      const allowed = list.filter(([seq]) => seq >= lastAcked).map(([, d]) => d);
      const got = bytes.subarray(g * HBS, (g + 1) * HBS);
      assert.ok(
        allowed.some((d) => d.equals(got)),
        `block ${g}: an acknowledged or later version`,
      );
    }
    assert.equal((await checkBlocks(head, "crash", SIZE)).badCount, 0);

    // A restarted replicator resumes from its durable point.
    const second = await startChild(dataDir);
    const { durableSeq } = await src.connect(second.endpoint, HelloMode.RESUME);
    assert.equal(durableSeq, meta.durableSeq);
    src.s.conn.close();
    second.child.kill("SIGTERM");
    await new Promise((r) => second.child.once("exit", r));
  });
});

describe("a replicator whose staging store is S3 (s3rver)", { timeout: 120_000 }, () => {
  test("the agent's initial sync lands in S3; its snapshot and head read back identical from another client", async () => {
    const scratch = await createScratch("ferry-snaps3-");
    const s3 = await startS3rver("ferry-staging");
    scratch.defer(() => s3.close());
    try {
      const s3Options = { endpoint: s3.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS };
      const store = new S3Store({ bucket: "ferry-staging", prefix: "replicator-a", ...s3Options });
      const rep = await startTestReplicator(join(scratch.dir, "replicator"), { store });
      scratch.defer(() => rep.replicator.close());
      const disk = join(scratch.dir, "source.img");
      await writeWorkload(disk, { diskId: "s3disk", size: SIZE });
      await replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "s3disk",
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "agent"),
      });
      const source = await readFile(disk);
      const catalog = openCatalog("s3://ferry-staging/replicator-a", s3Options);
      // The barrier's ACK means durable; the snapshot is written right after it (a PUT to S3): wait for it.
      let info;
      for (let i = 0; i < 100 && !info; i++) {
        [info] = (await catalog.list(SERVER)).filter((x) => x.diskId === "s3disk");
        if (!info) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(info?.reason, "initial-sync");
      const r = await catalog.open(SERVER, "s3disk", info!.snapshotId);
      assert.ok((await r.read(0, SIZE)).equals(source), "the snapshot in S3 equals the source");
      await r.close();
      await catalog.close();
      const report = await verifyVolume(store, SERVER, "s3disk");
      assert.equal(report.ok, true);
      const head = join(scratch.dir, "head.img");
      await exportHead(store, SERVER, "s3disk", head);
      assert.ok((await readFile(head)).equals(source), "the head in S3 equals the source");
    } finally {
      await scratch.cleanup();
    }
  });
});
