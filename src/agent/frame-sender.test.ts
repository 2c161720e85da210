import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type Socket } from "node:net";
import test from "node:test";
import { FramedConnection } from "../wire/index.ts";
import { FrameSender } from "./frame-sender.ts";
import { emptyCounters, emptyStalls } from "./stream-stats.ts";
import { Throttle } from "./throttle.ts";

test("every caller waiting for acknowledgements is woken, not only the last to start waiting", async (t) => {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const client = connect(port, "127.0.0.1");
  const [peerSocket] = await accepted;
  t.after(() => {
    client.destroy();
    peerSocket.destroy();
    server.close();
  });
  const peer = new FramedConnection(peerSocket);
  peer.start({ frame: () => {}, close: () => {} });
  const sender = new FrameSender({
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
    windowBytes: 1 << 20,
    throttle: new Throttle(0),
    counters: emptyCounters(),
    stalls: emptyStalls(),
  });
  t.after(() => sender.close());
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
