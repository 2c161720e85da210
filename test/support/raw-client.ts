/** A bare data-plane client for tests that must send what a correct agent never would. */
import { randomBytes } from "node:crypto";
import { connect } from "node:tls";
import type { ReplicatorEndpoint } from "../../src/agent/client.ts";
import { FramedConnection, HelloMode, PROTOCOL_VERSION, type Frame } from "../../src/wire/index.ts";

export interface RawSession {
  conn: FramedConnection;
  /** Frames received so far. */
  frames: Frame[];
  /** Resolves when the connection closes. */
  closed: Promise<void>;
  next(type: Frame["type"], timeoutMs?: number): Promise<Frame>;
}

export async function rawConnect(ep: ReplicatorEndpoint): Promise<RawSession> {
  const socket = connect({
    host: ep.host,
    port: ep.port,
    rejectUnauthorized: false,
    ...(ep.clientCertificate ? { cert: ep.clientCertificate.certPem, key: ep.clientCertificate.keyPem } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  const conn = new FramedConnection(socket);
  const frames: Frame[] = [];
  const waiters: (() => void)[] = [];
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  conn.start({
    frame: (f) => {
      frames.push(f);
      for (const w of waiters.splice(0)) w();
    },
    close: () => {
      resolveClosed();
      for (const w of waiters.splice(0)) w();
    },
  });
  let closedFlag = false;
  void closed.then(() => (closedFlag = true));
  return {
    conn,
    frames,
    closed,
    async next(type, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const f = frames.find((x) => x.type === type);
        if (f) return f;
        if (closedFlag || Date.now() > deadline)
          throw new Error(`no ${type} frame (got ${frames.map((x) => x.type).join(",")})`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

export function hello(
  ep: ReplicatorEndpoint,
  sourceServerId: string,
  diskId: string,
  diskSize: number,
): Frame {
  return {
    type: "HELLO",
    protocolVersion: PROTOCOL_VERSION,
    mode: HelloMode.NEW,
    sourceServerId,
    diskId,
    diskSize: BigInt(diskSize),
    logicalBlockSize: 512,
    hashBlockSize: 65536,
    generationId: randomBytes(16),
    token: ep.token,
  };
}
