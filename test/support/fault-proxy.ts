/**
 * A small TCP proxy of our own that puts faults between the agent and the
 * replicator: flip a byte of the agent's stream, reset both sides mid-stream
 * (a TCP RST, so mid-frame for any frame larger than a segment), or stall
 * forwarding for a while. Faults apply to the next connections, counted in
 * bytes from the agent since the connection started.
 *
 * In process: `startFaultProxy()`. As a program (run inside a network
 * namespace by the fault matrix): `node fault-proxy.ts --listen H:P --target
 * H:P`, which reads faults as JSON lines on stdin and reports events as JSON
 * lines on stdout.
 */
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export type Fault =
  | { kind: "none" }
  /** RST both sides once `afterBytes` went upstream, on each of the next `times` connections. */
  | { kind: "reset"; afterBytes: number; times: number }
  /** Flip the byte at upstream offset `afterBytes`, on each of the next `times` connections. */
  | { kind: "corrupt"; afterBytes: number; times: number }
  /** Forward nothing in either direction for `ms` once `afterBytes` went upstream (next connection). */
  | { kind: "stall"; afterBytes: number; ms: number };

export type ProxyEvent =
  | { event: "listening"; host: string; port: number }
  | { event: "connection"; id: number; at: number }
  | { event: "reset"; id: number; at: number; offset: number }
  | { event: "corrupted"; id: number; at: number; offset: number }
  | { event: "stalled"; id: number; at: number; ms: number }
  | { event: "closed"; id: number; at: number; upBytes: number; downBytes: number }
  /** (program only) a fault from stdin was taken. */
  | { event: "fault-set" };

export interface FaultProxyOptions {
  listen: { host: string; port: number };
  target: { host: string; port: number };
  onEvent?: (e: ProxyEvent) => void;
}

export interface FaultProxy {
  host: string;
  port: number;
  /** Replaces the pending fault. */
  setFault(fault: Fault): void;
  close(): Promise<void>;
}

export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  let fault: Fault = { kind: "none" };
  let nextId = 1;
  const sockets = new Set<Socket>();
  const emit = (e: ProxyEvent) => o.onEvent?.(e);

  const server = createServer((client) => {
    const id = nextId++;
    emit({ event: "connection", id, at: Date.now() });
    // The fault this connection gets, taken from the pending one.
    let mine: Fault = { kind: "none" };
    if (fault.kind === "reset" || fault.kind === "corrupt") {
      mine = fault;
      fault = fault.times > 1 ? { ...fault, times: fault.times - 1 } : { kind: "none" };
    } else if (fault.kind === "stall") {
      mine = fault;
      fault = { kind: "none" };
    }
    const upstream = connect(o.target.port, o.target.host);
    sockets.add(client);
    sockets.add(upstream);
    let up = 0;
    let down = 0;
    let ended = false;
    let stalledUntil = 0;
    /** Held while stalled, in order; `undefined` is an end of stream. */
    const held: { to: Socket; chunk: Buffer | undefined }[] = [];
    const forward = (to: Socket, chunk: Buffer | undefined) => {
      // Held bytes go first, whatever arrives meanwhile.
      if (Date.now() < stalledUntil || held.length > 0) held.push({ to, chunk });
      else if (chunk) to.write(chunk);
      else to.end();
    };
    const finish = () => {
      if (ended) return;
      ended = true;
      emit({ event: "closed", id, at: Date.now(), upBytes: up, downBytes: down });
    };
    client.on("data", (chunk: Buffer) => {
      const start = up;
      up += chunk.length;
      const f = mine;
      if (f.kind !== "none" && start + chunk.length > f.afterBytes && start <= f.afterBytes) {
        const at = f.afterBytes - start;
        mine = { kind: "none" };
        if (f.kind === "reset") {
          // What came before the cut is delivered; the rest never is.
          client.pause();
          upstream.write(chunk.subarray(0, at), () => {
            emit({ event: "reset", id, at: Date.now(), offset: f.afterBytes });
            client.resetAndDestroy();
            upstream.resetAndDestroy();
          });
          return;
        }
        if (f.kind === "corrupt") {
          const copy = Buffer.from(chunk);
          copy[at]! ^= 0xff;
          emit({ event: "corrupted", id, at: Date.now(), offset: f.afterBytes });
          forward(upstream, copy);
          return;
        }
        stalledUntil = Date.now() + f.ms;
        emit({ event: "stalled", id, at: Date.now(), ms: f.ms });
        setTimeout(() => {
          for (const h of held.splice(0)) {
            if (h.to.destroyed) continue;
            if (h.chunk) h.to.write(h.chunk);
            else h.to.end();
          }
        }, f.ms).unref();
      }
      forward(upstream, chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      down += chunk.length;
      forward(client, chunk);
    });
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on("end", () => forward(b, undefined));
      a.on("error", () => b.destroy());
      a.on("close", () => {
        sockets.delete(a);
        // Bytes held for the other side are still delivered, then it ends.
        if (held.some((h) => h.to === b)) forward(b, undefined);
        else b.destroy();
        finish();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.listen.port, o.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  emit({ event: "listening", host: addr.address, port: addr.port });
  return {
    host: addr.address,
    port: addr.port,
    setFault(f) {
      fault = f;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function hostPort(text: string | undefined): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(text ?? "");
  if (!m) throw new Error(`expected HOST:PORT, got "${text}"`);
  return { host: m[1]!, port: Number(m[2]) };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const arg = (name: string) => args[args.indexOf(name) + 1];
  const proxy = await startFaultProxy({
    listen: hostPort(arg("--listen")),
    target: hostPort(arg("--target")),
    onEvent: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
  });
  let buf = "";
  process.stdin.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      proxy.setFault(JSON.parse(buf.slice(0, i)) as Fault);
      buf = buf.slice(i + 1);
      const taken: ProxyEvent = { event: "fault-set" };
      process.stdout.write(`${JSON.stringify(taken)}\n`);
    }
  });
  // The test's end of stdin closing means the test is gone: so is the proxy.
  process.stdin.on("end", () => void proxy.close().then(() => process.exit(0)));
}
