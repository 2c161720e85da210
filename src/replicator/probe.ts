/**
 * The replicator's side of the data-plane probe (see src/wire/probe.ts): a
 * connection that negotiated the probe's ALPN receives the announced number
 * of bytes, answers how many arrived and closes. It runs after the same TLS
 * handshake as a replication session (client certificate included), so a
 * passing probe also proves the source may pair with this replicator.
 */
import type { TLSSocket } from "node:tls";
import { decodeProbeLength, encodeProbeLength, PROBE_HEADER_BYTES } from "../wire/probe.ts";

/** Serves one probe; the socket is closed when it ends or stalls for `idleMs`. */
export function serveProbe(socket: TLSSocket, idleMs = 10000): void {
  let header: Buffer = Buffer.alloc(0);
  let expected: number | undefined;
  let received = 0;
  socket.setTimeout(idleMs, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  socket.on("data", (chunk: Buffer) => {
    if (expected === undefined) {
      header = Buffer.concat([header, chunk]);
      if (header.length < PROBE_HEADER_BYTES) return;
      expected = decodeProbeLength(header);
      if (expected === undefined) {
        socket.destroy();
        return;
      }
      received = header.length - PROBE_HEADER_BYTES;
    } else {
      received += chunk.length;
    }
    if (received >= expected) {
      socket.end(encodeProbeLength(received));
      socket.removeAllListeners("data");
    }
  });
}
