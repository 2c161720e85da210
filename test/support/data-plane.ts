/** A replicator on loopback with a fresh certificate and token, for tests. */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createSelfSigned } from "../../src/lib/pki.ts";
import {
  type Replicator,
  type ReplicatorOptions,
  startReplicator,
  tokenAuthorizer,
} from "../../src/replicator/server.ts";
import type { ReplicatorEndpoint } from "../../src/agent/client.ts";
import { exportHead } from "../../src/replicator/verify.ts";

export interface TestReplicator {
  replicator: Replicator;
  endpoint: ReplicatorEndpoint;
  dataDir: string;
  certPem: string;
  keyPem: string;
}

export async function startTestReplicator(
  dataDir: string,
  extra: Partial<ReplicatorOptions> = {},
  cert?: { certPem: string; keyPem: string; fingerprint: string },
): Promise<TestReplicator> {
  const tls = cert ?? (await createSelfSigned({ commonName: "replicator", altNames: ["127.0.0.1"] }));
  const token = "test-token-" + Math.random().toString(36).slice(2);
  const replicator = await startReplicator({
    dataDir,
    host: "127.0.0.1",
    port: 0,
    tls,
    authorize: tokenAuthorizer(token),
    ...extra,
  });
  return {
    replicator,
    dataDir,
    certPem: tls.certPem,
    keyPem: tls.keyPem,
    endpoint: { host: "127.0.0.1", port: replicator.port, fingerprint: tls.fingerprint, token },
  };
}

/** SHA-256 of a file or device's first `size` bytes. */
export async function sha256File(path: string, size?: number): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(4 * 1024 * 1024);
    let pos = 0;
    for (;;) {
      const want = size === undefined ? buf.length : Math.min(buf.length, size - pos);
      if (want <= 0) break;
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

let exports = 0;

/**
 * The replica of a disk as a raw image file: the staging volume's head
 * (durable, committed state) exported beside the data directory. Call it again
 * for a fresh copy.
 */
export async function stagingImage(dataDir: string, sourceServerId: string, diskId: string): Promise<string> {
  const out = join(dirname(dataDir), `replica-${sourceServerId}-${diskId}-${process.pid}-${++exports}.img`);
  await exportHead(dataDir, sourceServerId, diskId, out);
  return out;
}

/** The per-block hashes the replicator recorded for a disk (its head), concatenated. */
export async function stagingHashes(
  dataDir: string,
  sourceServerId: string,
  diskId: string,
): Promise<Buffer> {
  const { LocalDirectoryStore } = await import("../../src/replicator/store/local-directory-store.ts");
  const { StagingVolume } = await import("../../src/replicator/volume.ts");
  const vol = await StagingVolume.open(
    new LocalDirectoryStore(dataDir, { readOnly: true }),
    sourceServerId,
    diskId,
    {
      readOnly: true,
    },
  );
  try {
    return await vol.readHashes(0, Math.ceil(vol.meta.diskSize / vol.meta.hashBlockSize));
  } finally {
    await vol.close();
  }
}

/** The file and position holding the stored bytes of the block at `offset` (to damage it in tests). */
export async function stagingBlockFile(
  dataDir: string,
  sourceServerId: string,
  diskId: string,
  offset: number,
): Promise<{ path: string; position: number }> {
  const { LocalDirectoryStore } = await import("../../src/replicator/store/local-directory-store.ts");
  const { StagingVolume } = await import("../../src/replicator/volume.ts");
  const vol = await StagingVolume.open(
    new LocalDirectoryStore(dataDir, { readOnly: true }),
    sourceServerId,
    diskId,
    {
      readOnly: true,
    },
  );
  try {
    const at = vol.locateBlock(Math.floor(offset / vol.meta.hashBlockSize));
    if (!at) throw new Error(`block at ${offset} of ${sourceServerId}/${diskId} is zeros: nothing stored`);
    return {
      path: join(dataDir, at.sealed ? at.key : `${at.key}.open`),
      position: at.offset + (offset % vol.meta.hashBlockSize),
    };
  } finally {
    await vol.close();
  }
}

/**
 * A disk image with the benchmark's mix, in 1 MiB stripes: half zeros, a
 * quarter text-like, a quarter random. Deterministic for a given seed.
 */
export async function writeMixedImage(path: string, bytes: number, seed = 1): Promise<void> {
  const fh = await open(path, "w");
  try {
    const MiB = 1024 * 1024;
    const words = "replica block sector journal inode extent ferry migrate staging snapshot cutover ".split(
      " ",
    );
    let x = seed >>> 0 || 1;
    const rnd = () => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
    for (let off = 0; off < bytes; off += MiB) {
      const n = Math.min(MiB, bytes - off);
      const kind = (off / MiB) % 4;
      let buf: Buffer;
      if (kind === 0 || kind === 2) {
        continue; // zeros: leave the file sparse
      } else if (kind === 1) {
        const parts: string[] = [];
        let len = 0;
        while (len < n) {
          const w = words[rnd() % words.length]! + (rnd() % 7 === 0 ? `${rnd() % 100000}\n` : " ");
          parts.push(w);
          len += w.length;
        }
        buf = Buffer.from(parts.join("")).subarray(0, n);
      } else {
        buf = Buffer.alloc(n);
        for (let i = 0; i < n; i += 4) buf.writeUInt32LE(rnd(), i);
      }
      await fh.write(buf, 0, n, off);
    }
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}
