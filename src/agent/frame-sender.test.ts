import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type Socket } from "node:net";
import test from "node:test";
import { FramedConnection } from "../wire/index.ts";
import { FrameSender } from "./frame-sender.ts";
import { emptyCounters, emptyStalls } from "./stream-stats.ts";
import { Throttle } from "./throttle.ts";

/** A sender on a real loopback socket, with a peer that records (and may acknowledge) the frames it gets. */
async function senderPair(t: test.TestContext, windowBytes: number, ackEach: boolean) {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const client = connect(port, "127.0.0.1");
  await once(client, "connect");
  const [peerSocket] = await accepted;
  const received: number[] = [];
  const peer = new FramedConnection(peerSocket);
  peer.start({
    frame: (f) => {
      if (f.type !== "DATA") return;
      received.push(Number(f.seq));
      if (ackEach) peer.send({ type: "ACK", seq: f.seq });
    },
    close: () => {},
  });
  // Every batch the socket is handed (a write or a writev of corked chunks) is one system call at most.
  let socketWrites = 0;
  const writev = client._writev!.bind(client);
  const write = client._write.bind(client);
  client._writev = (chunks, cb) => {
    socketWrites++;
    writev(chunks, cb);
  };
  client._write = (chunk, encoding, cb) => {
    socketWrites++;
    write(chunk, encoding, cb);
  };
  class Sender extends FrameSender {
    queueData(seq: number): void {
      const payload = Buffer.alloc(4096, seq);
      this.nextSeq = seq + 1;
      this.queue(
        {
          type: "DATA",
          seq: BigInt(seq),
          offset: BigInt(seq * 4096),
          length: 4096,
          compression: 0,
          hashes: Buffer.alloc(32),
          payload,
        },
        seq * 4096,
        (seq + 1) * 4096,
        4096,
      );
    }
  }
  const sender = new Sender({
    conn: new FramedConnection(client),
    welcome: {
      type: "WELCOME",
      protocolVersion: 1,
      generationId: Buffer.alloc(16),
      resumeOffset: 0n,
      durableSeq: 0n,
      maxDataLength: 1 << 20,
      heartbeatIntervalMs: 60_000,
    },
    windowBytes,
    throttle: new Throttle(0),
    counters: emptyCounters(),
    stalls: emptyStalls(),
  });
  t.after(() => {
    sender.close();
    peerSocket.destroy();
    server.close();
  });
  return { sender, peer, received, writes: () => socketWrites };
}

test("every caller waiting for acknowledgements is woken, not only the last to start waiting", async (t) => {
  const { sender, peer } = await senderPair(t, 1 << 20, false);
  // A consistency point waits for its ACK while a window wait (or another point) starts later.
  const woken: number[] = [];
  const first = sender.waitAcked(1).then(() => woken.push(1));
  const second = sender.waitAcked(2).then(() => woken.push(2));
  peer.send({ type: "ACK", seq: 2n });
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("a waiter was never woken")), 5000).unref(),
  );
  await Promise.race([Promise.all([first, second]), timeout]);
  assert.deepEqual(woken.sort(), [1, 2]);
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

test("frames flushed together leave in a few socket writes, not one per frame", async (t) => {
  const { sender, received, writes } = await senderPair(t, 64 << 20, false);
  for (let seq = 1; seq <= 50; seq++) sender.queueData(seq);
  await sender.flushPending(0);
  await until(() => received.length === 50, `the peer got ${received.length} of 50 frames`);
  assert.deepEqual(
    received,
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  // 50 frames of ~4.2 KiB fit one corked batch (256 KiB); uncorked, each frame was a write of its own.
  assert.ok(writes() <= 3, `${writes()} socket writes for 50 frames`);
});

test("a batch larger than the window is released while it waits for acknowledgements", async (t) => {
  // Four frames fit the window: the fifth waits for an ACK, which only comes if the first four left.
  const { sender, received } = await senderPair(t, 16 * 1024, true);
  for (let seq = 1; seq <= 40; seq++) sender.queueData(seq);
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("the batch stayed corked behind a window wait")), 5000).unref(),
  );
  await Promise.race([sender.flushPending(0), timeout]);
  await until(() => received.length === 40, `the peer got ${received.length} of 40 frames`);
  assert.equal(new Set(received).size, 40);
});
