/**
 * The data path under bad input and faults: corrupted payloads, lying frame
 * lengths, an agent killed mid-sync, a disk that shrinks, a full staging disk,
 * a resume against the wrong generation, a replicator restart.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { replicateDisk } from "../../src/agent/sync.ts";
import { FerryError } from "../../src/lib/errors.ts";
import type { SessionEvent } from "../../src/replicator/session.ts";
import { Compression, blockHashes, encodeFrameToBuffer } from "../../src/wire/index.ts";
import { createScratch, haveRoot, sh, type Scratch } from "../support/loop.ts";
import { sha256File, stagingImage, startTestReplicator, type TestReplicator } from "../support/data-plane.ts";
import { hello, rawConnect } from "../support/raw-client.ts";

const MiB = 1024 * 1024;
const SERVER = "s-faults00000000000";
const FERRY = join(import.meta.dirname, "..", "..", "bin", "ferry");

async function randomImage(path: string, bytes: number): Promise<void> {
  await writeFile(path, randomBytes(bytes));
}

async function meta(
  rep: TestReplicator,
  disk: string,
): Promise<{ resumeOffset: number; durableSeq: number; generationId: string }> {
  return JSON.parse(await readFile(join(rep.dataDir, "volumes", SERVER, disk, "meta.json"), "utf8")) as {
    resumeOffset: number;
    durableSeq: number;
    generationId: string;
  };
}

/** The first `bytes` of two files are equal. */
async function samePrefix(a: string, b: string, bytes: number): Promise<boolean> {
  return (await sha256File(a, bytes)) === (await sha256File(b, bytes));
}

describe("data path faults", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  const events: SessionEvent[] = [];
  before(async () => {
    scratch = await createScratch();
    rep = await startTestReplicator(join(scratch.dir, "replicator"), { onEvent: (e) => events.push(e) });
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  test("a payload that fails its hash is refused and never written", async () => {
    const s = await rawConnect(rep.endpoint);
    s.conn.send(hello(rep.endpoint, SERVER, "corrupt", 4 * MiB));
    await s.next("WELCOME");
    const good = randomBytes(65536);
    const damaged = Buffer.from(good);
    damaged[100]! ^= 0xff;
    s.conn.send({
      type: "DATA",
      seq: 1n,
      offset: 0n,
      length: good.length,
      compression: Compression.NONE,
      hashes: blockHashes(good, 65536),
      payload: damaged,
    });
    const err = await s.next("ERROR");
    assert.equal(err.type === "ERROR" && err.code, "DATA_CHECKSUM_MISMATCH");
    await s.closed;
    const img = await readFile(await stagingImage(rep.dataDir, SERVER, "corrupt"));
    assert.ok(img.subarray(0, 65536).equals(Buffer.alloc(65536)), "the damaged block was not written");
    assert.equal((await meta(rep, "corrupt")).durableSeq, 0);
  });

  test("a frame that lies about its length is refused before any allocation", async () => {
    const s = await rawConnect(rep.endpoint);
    s.conn.send(hello(rep.endpoint, SERVER, "liar", 4 * MiB));
    await s.next("WELCOME");
    const lie = Buffer.alloc(8);
    lie.writeUInt32BE(0xfffffff0, 0);
    s.conn.stream.write(lie);
    const err = await s.next("ERROR");
    assert.equal(err.type === "ERROR" && err.code, "WIRE_FRAME_TOO_LARGE");
    await s.closed;
  });

  test("a stream that damages a frame head gets a typed error", async () => {
    const s = await rawConnect(rep.endpoint);
    s.conn.send(hello(rep.endpoint, SERVER, "crc", 4 * MiB));
    await s.next("WELCOME");
    const frame = Buffer.from(encodeFrameToBuffer({ type: "ZERO", seq: 1n, offset: 0n, length: 65536n }));
    frame[12]! ^= 1;
    s.conn.stream.write(frame);
    const err = await s.next("ERROR");
    assert.equal(err.type === "ERROR" && err.code, "WIRE_BAD_CRC");
  });

  test("agent killed mid-sync: restart resumes, resends at most the window, ends identical", async () => {
    const disk = join(scratch.dir, "kill.img");
    const size = 48 * MiB;
    await randomImage(disk, size);
    const window = 4;
    const args = [
      "agent",
      "replicate",
      "--json",
      "--disk",
      `${disk}=killme`,
      "--replicator",
      `127.0.0.1:${rep.endpoint.port}`,
      "--replicator-fingerprint",
      rep.endpoint.fingerprint,
      "--token",
      rep.endpoint.token,
      "--source-server-id",
      SERVER,
      "--state-dir",
      join(scratch.dir, "kill-state"),
      "--window",
      String(window),
      "--bandwidth",
      "160",
    ];
    const before = events.length;
    const child = spawn(FERRY, args, { stdio: ["ignore", "pipe", "pipe"] });
    let lastAcked = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no progress within 30 s")), 30000);
      let buf = "";
      child.stdout.on("data", (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const ev = JSON.parse(line) as { event: string; ackedOffset?: number };
          if (ev.event === "progress" && (ev.ackedOffset ?? 0) >= 12 * MiB && lastAcked === 0) {
            lastAcked = ev.ackedOffset!;
            child.kill("SIGKILL");
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await new Promise((r) => child.once("exit", r).once("close", r));
    assert.ok(lastAcked >= 12 * MiB, "the agent was killed mid-sync");
    // Wait for the replicator to notice the dead connection.
    for (
      let i = 0;
      i < 100 && !events.slice(before).some((e) => e.type === "closed" && e.diskId === "killme");
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const durable = (await meta(rep, "killme")).resumeOffset;
    assert.ok(
      durable >= lastAcked && durable < size,
      `durable point ${durable} is between ${lastAcked} and the end`,
    );

    const r = await replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "killme",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "kill-state"),
    });
    assert.equal(r.resumedFrom, durable);
    assert.equal(r.dataBytes, size - durable, "the restart sends only what was not durable");
    assert.equal(await sha256File(await stagingImage(rep.dataDir, SERVER, "killme")), await sha256File(disk));
    const received = events
      .slice(before)
      .filter(
        (e): e is Extract<SessionEvent, { type: "closed" }> => e.type === "closed" && e.diskId === "killme",
      )
      .reduce((n, e) => n + e.dataBytesReceived, 0);
    const resent = received - size;
    assert.ok(resent >= 0);
    assert.ok(resent <= window * MiB + MiB, `resent ${resent} bytes, more than the ${window} MiB window`);
  });

  test("a resume against another generation is refused clearly", async () => {
    const disk = join(scratch.dir, "gen.img");
    await randomImage(disk, 16 * MiB);
    const ac = new AbortController();
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "gen",
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "gen-a"),
        bandwidthMbps: 80,
        windowBytes: 2 * MiB,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.ackedOffset > 2 * MiB) ac.abort();
        },
      }),
      (e: unknown) => e instanceof FerryError && e.code === "ABORTED",
    );
    // Another agent state (a reinstall) replaces the volume with a new generation...
    await replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "gen",
      endpoint: rep.endpoint,
      stateDir: join(scratch.dir, "gen-b"),
    });
    // ...so the first one cannot resume its old generation.
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "gen",
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "gen-a"),
      }),
      (e: unknown) =>
        e instanceof FerryError && e.code === "GENERATION_MISMATCH" && /--resync/.test(e.message),
    );
  });

  test("a disk that shrinks mid-sync stops with a clear error; acknowledged data is kept", async () => {
    const disk = join(scratch.dir, "shrink.img");
    await randomImage(disk, 48 * MiB);
    const original = join(scratch.dir, "shrink-original.img");
    await sh("cp", [disk, original]);
    let cut = false;
    await assert.rejects(
      replicateDisk({
        sourcePath: disk,
        sourceServerId: SERVER,
        diskId: "shrink",
        endpoint: rep.endpoint,
        stateDir: join(scratch.dir, "shrink-state"),
        bandwidthMbps: 120,
        windowBytes: 2 * MiB,
        onProgress: (p) => {
          // Reads run at most a few MiB ahead of the throttled sender: cutting
          // well beyond them is sure to be noticed.
          if (!cut && p.readOffset >= 4 * MiB) {
            cut = true;
            void truncate(disk, 32 * MiB);
          }
        },
      }),
      (e: unknown) => e instanceof FerryError && e.code === "DISK_SHRANK" && e.message.includes(disk),
    );
    const m = await meta(rep, "shrink");
    assert.ok(m.resumeOffset > 0 && m.resumeOffset <= 32 * MiB);
    assert.ok(await samePrefix(await stagingImage(rep.dataDir, SERVER, "shrink"), original, m.resumeOffset));
  });

  test("the replicator restarting mid-sync: the agent reconnects and finishes identical", async () => {
    const disk = join(scratch.dir, "restart.img");
    await randomImage(disk, 24 * MiB);
    const dataDir = join(scratch.dir, "replicator-restart");
    let r1 = await startTestReplicator(dataDir);
    const cert = { certPem: r1.certPem, keyPem: r1.keyPem, fingerprint: r1.endpoint.fingerprint };
    let restarted = false;
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: SERVER,
      diskId: "restart",
      endpoint: r1.endpoint,
      stateDir: join(scratch.dir, "restart-state"),
      bandwidthMbps: 100,
      windowBytes: 2 * MiB,
      onProgress: (p) => {
        if (!restarted && p.ackedOffset >= 6 * MiB) {
          restarted = true;
          void (async () => {
            const port = r1.replicator.port;
            await r1.replicator.close();
            r1 = await startTestReplicator(dataDir, { port, authorize: async () => {} }, cert);
          })();
        }
      },
    });
    const result = await sync;
    assert.ok(result.reconnects >= 1, "the agent reconnected");
    assert.ok(result.resumedFrom === 0);
    assert.equal(await sha256File(await stagingImage(dataDir, SERVER, "restart")), await sha256File(disk));
    await r1.replicator.close();
  });

  test(
    "a full staging disk stops replication with a clear error and no lost acknowledgement",
    { skip: haveRoot() ? false : "needs root to mount a small tmpfs" },
    async () => {
      const dataDir = join(scratch.dir, "small-staging");
      await sh("mkdir", ["-p", dataDir]);
      await sh("mount", ["-t", "tmpfs", "-o", "size=10m", "tmpfs", dataDir]);
      scratch.defer(() => sh("umount", [dataDir]));
      const small = await startTestReplicator(dataDir);
      try {
        const disk = join(scratch.dir, "big.img");
        await randomImage(disk, 24 * MiB);
        await assert.rejects(
          replicateDisk({
            sourcePath: disk,
            sourceServerId: SERVER,
            diskId: "full",
            endpoint: small.endpoint,
            stateDir: join(scratch.dir, "full-state"),
            windowBytes: 2 * MiB,
          }),
          (e: unknown) => e instanceof FerryError && e.code === "STAGING_DISK_FULL" && /full/.test(e.message),
        );
        const m = JSON.parse(
          await readFile(join(dataDir, "volumes", SERVER, "full", "meta.json"), "utf8"),
        ) as {
          resumeOffset: number;
        };
        assert.ok(await samePrefix(await stagingImage(dataDir, SERVER, "full"), disk, m.resumeOffset));
      } finally {
        await small.replicator.close();
      }
    },
  );
});
