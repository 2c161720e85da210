/** The fault proxy does exactly the damage it is told to, and nothing else. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { type FaultProxy, type ProxyEvent, startFaultProxy } from "./fault-proxy.ts";

/** A server that records what it received per connection. */
function sink(): Promise<{ server: Server; port: number; received: Buffer[][] }> {
  const received: Buffer[][] = [];
  const server = createServer((s) => {
    const chunks: Buffer[] = [];
    received.push(chunks);
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", () => {});
    s.on("end", () => s.end());
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, port: (server.address() as AddressInfo).port, received }),
    ),
  );
}

/** Sends `data`, half-closes, and resolves with how the connection ended. */
function push(port: number, data: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, "127.0.0.1", () => s.end(data));
    s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.on("close", () => resolve("closed"));
    s.resume();
  });
}

describe("fault proxy", () => {
  let target: Awaited<ReturnType<typeof sink>>;
  let proxy: FaultProxy;
  const events: ProxyEvent[] = [];
  before(async () => {
    target = await sink();
    proxy = await startFaultProxy({
      listen: { host: "127.0.0.1", port: 0 },
      target: { host: "127.0.0.1", port: target.port },
      onEvent: (e) => events.push(e),
    });
  });
  after(async () => {
    await proxy.close();
    await new Promise((r) => target.server.close(r));
  });

  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(cond(), "timed out");
  };

  test("without a fault, bytes pass unchanged", async () => {
    const data = randomBytes(300000);
    const n = target.received.length;
    await push(proxy.port, data);
    await until(() => Buffer.concat(target.received[n] ?? []).length === data.length);
    assert.ok(Buffer.concat(target.received[n]!).equals(data));
  });

  test("corrupt flips exactly the one byte, on the next connection only", async () => {
    proxy.setFault({ kind: "corrupt", afterBytes: 70000, times: 1 });
    for (let round = 0; round < 2; round++) {
      const data = randomBytes(200000);
      const n = target.received.length;
      await push(proxy.port, data);
      await until(() => Buffer.concat(target.received[n] ?? []).length === data.length);
      const got = Buffer.concat(target.received[n]!);
      const diff = [...got.keys()].filter((i) => got[i] !== data[i]);
      assert.deepEqual(diff, round === 0 ? [70000] : []);
    }
  });

  test("reset delivers the bytes before the cut and resets the client", async () => {
    proxy.setFault({ kind: "reset", afterBytes: 50000, times: 1 });
    const data = randomBytes(400000);
    const n = target.received.length;
    const how = await push(proxy.port, data);
    assert.equal(how, "ECONNRESET");
    await until(() => events.some((e) => e.event === "reset"));
    const got = Buffer.concat(target.received[n] ?? []);
    assert.ok(got.length <= 50000 && data.subarray(0, got.length).equals(got));
  });

  test("stall holds the bytes for the time given, then delivers them in order", async () => {
    proxy.setFault({ kind: "stall", afterBytes: 1000, ms: 400 });
    const data = randomBytes(100000);
    const n = target.received.length;
    const t0 = Date.now();
    void push(proxy.port, data);
    await until(() => Buffer.concat(target.received[n] ?? []).length === data.length);
    assert.ok(Date.now() - t0 >= 380, `delivered after ${Date.now() - t0} ms`);
    assert.ok(Buffer.concat(target.received[n]!).equals(data));
  });
});
