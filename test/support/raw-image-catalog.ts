/**
 * A SnapshotCatalog over plain raw image files, for launch tests that do not
 * need the replicator's staging store: a snapshot is a sparse copy of an image
 * plus a BLAKE3 per block, and reads are checked against those hashes like
 * the real store's (a flipped byte → SNAPSHOT_DAMAGED naming the block).
 * `takeSnapshot` copies the attached live images, between optional
 * `quiesce`/`resume` hooks (e.g. fsfreeze) that make the copy a consistency point.
 */
import { execFile } from "node:child_process";
import { mkdir, open, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type {
  SnapshotCatalog,
  SnapshotExtent,
  SnapshotInfo,
  SnapshotReader,
} from "../../src/model/staging.ts";
import { FerryError } from "../../src/lib/errors.ts";
import { blake3Of } from "../../src/wire/hashes.ts";

const run = promisify(execFile);
const BLOCK = 64 * 1024;
const ZERO_HASH = blake3Of(Buffer.alloc(BLOCK)).toString("hex");

export interface RawImageCatalog extends SnapshotCatalog {
  root: string;
  /** Records a snapshot of `image` as disk `diskId` of `sourceServerId`. */
  addSnapshot(sourceServerId: string, diskId: string, image: string): Promise<SnapshotInfo>;
  /** The image file that holds a snapshot's data (tests damage it). */
  dataPath(info: SnapshotInfo): string;
  /** Live disks `takeSnapshot` copies; without any, the catalog cannot take snapshots. */
  attachLive(
    sourceServerId: string,
    disks: { diskId: string; path: string }[],
    hooks?: { quiesce?(): Promise<void>; resume?(): Promise<void> },
  ): void;
}

function hashBlock(buf: Buffer): string {
  return blake3Of(buf).toString("hex");
}

export function createRawImageCatalog(root: string): RawImageCatalog {
  const live = new Map<
    string,
    {
      disks: { diskId: string; path: string }[];
      hooks: { quiesce?(): Promise<void>; resume?(): Promise<void> };
    }
  >();
  let seq = 0;
  const dirOf = (info: Pick<SnapshotInfo, "sourceServerId" | "snapshotId">) =>
    join(root, info.sourceServerId, info.snapshotId);

  async function addSnapshot(sourceServerId: string, diskId: string, image: string, snapshotId?: string) {
    const id = snapshotId ?? `snap-${Date.now().toString(36)}-${(seq++).toString().padStart(4, "0")}`;
    const dir = join(root, sourceServerId, id);
    await mkdir(dir, { recursive: true });
    const data = join(dir, `${diskId}.raw`);
    await run("cp", ["--sparse=always", image, data]);
    const size = (await stat(data)).size;
    const hashes: string[] = [];
    const fh = await open(data, "r");
    try {
      const buf = Buffer.alloc(BLOCK);
      for (let off = 0; off < size; off += BLOCK) {
        buf.fill(0);
        await fh.read(buf, 0, Math.min(BLOCK, size - off), off);
        hashes.push(hashBlock(buf));
      }
    } finally {
      await fh.close();
    }
    const info: SnapshotInfo = {
      snapshotId: id,
      sourceServerId,
      diskId,
      createdAt: new Date().toISOString(),
      barrierId: seq,
      diskSize: size,
      logicalBlockSize: 512,
      blockSize: BLOCK,
      reason: "requested",
    };
    await writeFile(join(dir, `${diskId}.json`), JSON.stringify({ info, hashes }));
    return info;
  }

  const catalog: RawImageCatalog = {
    root,
    addSnapshot: (s, d, image) => addSnapshot(s, d, image),
    dataPath: (info) => join(dirOf(info), `${info.diskId}.raw`),
    attachLive(sourceServerId, disks, hooks = {}) {
      live.set(sourceServerId, { disks, hooks });
    },
    async list(sourceServerId) {
      const out: SnapshotInfo[] = [];
      const snaps = await readdir(join(root, sourceServerId)).catch(() => [] as string[]);
      for (const s of snaps) {
        for (const f of await readdir(join(root, sourceServerId, s))) {
          if (!f.endsWith(".json")) continue;
          out.push(
            (JSON.parse(await readFile(join(root, sourceServerId, s, f), "utf8")) as { info: SnapshotInfo })
              .info,
          );
        }
      }
      return out.sort(
        (a, b) => a.createdAt.localeCompare(b.createdAt) || a.snapshotId.localeCompare(b.snapshotId),
      );
    },
    async open(sourceServerId, diskId, snapshotId): Promise<SnapshotReader> {
      const dir = join(root, sourceServerId, snapshotId);
      const meta = JSON.parse(await readFile(join(dir, `${diskId}.json`), "utf8")) as {
        info: SnapshotInfo;
        hashes: string[];
      };
      const fh = await open(join(dir, `${diskId}.raw`), "r");
      const { info, hashes } = meta;
      return {
        info,
        async read(offset, length) {
          if (length === 0) return Buffer.alloc(0);
          const first = Math.floor(offset / BLOCK);
          const last = Math.floor((offset + length - 1) / BLOCK);
          // One read for the aligned range, then every block checked against its hash.
          const span = Buffer.allocUnsafe((last - first + 1) * BLOCK);
          const start0 = first * BLOCK;
          const want = Math.min(span.length, info.diskSize - start0);
          const { bytesRead } = await fh.read(span, 0, want, start0);
          span.fill(0, bytesRead);
          for (let b = first; b <= last; b++) {
            const start = b * BLOCK;
            const block = span.subarray(start - start0, start - start0 + BLOCK);
            if (hashBlock(block) !== hashes[b])
              throw new FerryError(
                "SNAPSHOT_DAMAGED",
                `block at offset ${start} of snapshot ${snapshotId} (disk ${diskId}) does not match its recorded hash; the stored data is damaged`,
                { details: { offset: start } },
              );
          }
          return span.subarray(offset - start0, offset - start0 + length);
        },
        async *extents(): AsyncIterable<SnapshotExtent> {
          let cur: SnapshotExtent | undefined;
          for (let b = 0; b < hashes.length; b++) {
            const zero = hashes[b] === ZERO_HASH;
            const len = Math.min(BLOCK, info.diskSize - b * BLOCK);
            if (cur && cur.zero === zero) cur.length += len;
            else {
              if (cur) yield cur;
              cur = { offset: b * BLOCK, length: len, zero };
            }
          }
          if (cur) yield cur;
        },
        close: () => fh.close(),
      };
    },
  };
  catalog.takeSnapshot = async (sourceServerId, _o) => {
    const l = live.get(sourceServerId);
    if (!l)
      throw new FerryError(
        "SNAPSHOT_TIMEOUT",
        `no live disks attached for ${sourceServerId}; no consistency point came`,
      );
    const id = `snap-${Date.now().toString(36)}-${(seq++).toString().padStart(4, "0")}`;
    await l.hooks.quiesce?.();
    try {
      const out: SnapshotInfo[] = [];
      for (const d of l.disks) out.push(await addSnapshot(sourceServerId, d.diskId, d.path, id));
      return out;
    } finally {
      await l.hooks.resume?.();
    }
  };
  return catalog;
}
