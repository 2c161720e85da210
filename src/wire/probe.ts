/**
 * The data-plane probe `ferry doctor` runs against a replicator: a TLS
 * connection on the replicator's port (1500) that asks, by ALPN, for the
 * probe instead of a replication session. The client sends a 8-byte
 * big-endian length and that many bytes; the replicator answers with 8 bytes:
 * how many it received. Nothing is stored. Types and framing only; no sockets.
 */

/** The ALPN protocol that selects the probe (agents negotiate none). */
export const PROBE_ALPN = "ferry-probe/1";
/** Most bytes one probe may send. */
export const MAX_PROBE_BYTES = 64 * 1024 * 1024;
export const PROBE_HEADER_BYTES = 8;

export function encodeProbeLength(n: number): Buffer {
  const b = Buffer.alloc(PROBE_HEADER_BYTES);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** The length in a probe header or answer; undefined when it exceeds `max`. */
export function decodeProbeLength(b: Buffer, max = MAX_PROBE_BYTES): number | undefined {
  const n = b.readBigUInt64BE(0);
  return n > BigInt(max) ? undefined : Number(n);
}
