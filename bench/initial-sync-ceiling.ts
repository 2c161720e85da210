/**
 * Ceilings for P1 on this machine, run by `bench/initial-sync.ts --ceiling`
 * as separate processes (like the agent and the replicator):
 *
 *   node bench/initial-sync-ceiling.ts sink
 *     A replicator that does nothing: TLS 1.3, frames decoded, HELLO answered,
 *     every DATA/ZERO/BARRIER acknowledged at once, payloads neither verified
 *     nor written. The agent against it shows what the agent and TLS alone
 *     can do here. Prints {port, fingerprint, token} like `ferry replicator run --json`.
 *   node bench/initial-sync-ceiling.ts raw-sink
 *     A TLS 1.3 server that reads and discards. Prints {port, fingerprint}.
 *   node bench/initial-sync-ceiling.ts raw-send PORT BYTES
 *     Sends BYTES over TLS (AES-128-GCM, 1 MiB writes of non-zero bytes) to a
 *     raw-sink and prints {seconds} once the sink has read them all: the
 *     transport alone, no disk, no framing.
 */
import { randomFillSync } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect, createServer, type TLSSocket } from "node:tls";
import { createSelfSigned } from "../src/lib/pki.ts";
import { FramedConnection, PROTOCOL_VERSION, type Frame } from "../src/wire/index.ts";

const MiB = 1024 * 1024;

async function tlsServer(onSocket: (s: TLSSocket) => void): Promise<{ port: number; fingerprint: string }> {
  const cert = await createSelfSigned({ commonName: "ferry-bench-sink", altNames: ["127.0.0.1"] });
  const server = createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: "TLSv1.3" }, (s) => {
    s.setNoDelay(true);
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.on("SIGTERM", () => process.exit(0));
  return { port: (server.address() as AddressInfo).port, fingerprint: cert.fingerprint };
}

function serveSink(s: TLSSocket): void {
  const conn = new FramedConnection(s, { maxFrameLength: 4 * MiB + 64 * 1024 });
  const ack = (seq: bigint) => conn.send({ type: "ACK", seq });
  conn.start({
    frame(f: Frame) {
      if (f.type === "HELLO") {
        conn.send({
          type: "WELCOME",
          protocolVersion: PROTOCOL_VERSION,
          generationId: f.generationId,
          resumeOffset: 0n,
          durableSeq: 0n,
          maxDataLength: 4 * MiB,
          heartbeatIntervalMs: 5000,
        });
      } else if (f.type === "DATA" || f.type === "ZERO" || f.type === "BARRIER") ack(f.seq);
    },
    close() {},
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "sink") {
  const info = await tlsServer(serveSink);
  process.stdout.write(`${JSON.stringify({ ...info, token: "sink" })}\n`);
} else if (mode === "raw-sink") {
  const info = await tlsServer((s) => {
    s.on("data", () => {});
    s.on("end", () => s.end());
    s.on("error", () => {});
  });
  process.stdout.write(`${JSON.stringify(info)}\n`);
} else if (mode === "raw-send") {
  const port = Number(args[0]);
  const bytes = Number(args[1]);
  const block = randomFillSync(Buffer.alloc(MiB));
  const s = connect({
    host: "127.0.0.1",
    port,
    minVersion: "TLSv1.3",
    ciphers: "TLS_AES_128_GCM_SHA256",
    rejectUnauthorized: false,
  });
  await new Promise<void>((resolve, reject) => {
    s.once("secureConnect", () => resolve());
    s.once("error", reject);
  });
  s.setNoDelay(true);
  const t0 = performance.now();
  for (let sent = 0; sent < bytes; sent += MiB) {
    if (!s.write(block.subarray(0, Math.min(MiB, bytes - sent)))) {
      await new Promise((r) => s.once("drain", r));
    }
  }
  s.end();
  // The sink ends its side once it has read everything.
  await new Promise<void>((resolve) => {
    s.on("data", () => {});
    s.once("end", () => resolve());
  });
  process.stdout.write(`${JSON.stringify({ seconds: (performance.now() - t0) / 1000 })}\n`);
  s.destroy();
} else {
  process.stderr.write("usage: initial-sync-ceiling.ts sink | raw-sink | raw-send PORT BYTES\n");
  process.exit(2);
}
