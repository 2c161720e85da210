/**
 * P8: launch a 4 GiB snapshot as a raw image, against the sequential write
 * speed of this machine (`dd` of the same size, conv=fdatasync). The
 * snapshot holds data in every block (text and random, no zeros), so the
 * launch writes every byte, like dd; every block is read back through the
 * snapshot reader and checked against its recorded hash. The snapshot comes
 * from the raw-image catalog (test/support) until the staging store's
 * catalog is used here. BENCH_LAUNCH_SIZE=1G for a shorter run.
 */
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLauncher } from "../src/launch/index.ts";
import { parseSize } from "../src/lib/units.ts";
import { createRawImageCatalog } from "../test/support/raw-image-catalog.ts";
import { GiB, MiB, dropCaches, mbps, ratio, timed } from "./support.ts";

const size = parseSize(process.env.BENCH_LAUNCH_SIZE ?? "4G");
const work = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), "ferry-bench-launch-"));
try {
  // Every MiB is data: alternating log-like text and random bytes.
  const src = join(work, "source.img");
  const fh = await open(src, "w");
  const buf = Buffer.alloc(MiB);
  const text = Buffer.from(
    "2026-11-25T04:20:00Z host app[42]: GET /api/v1/items status=200\n".repeat(MiB / 64),
  );
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    await fh.write(i % 2 ? randomFillSync(buf) : text.subarray(0, MiB), 0, MiB, off);
  }
  await fh.close();
  const catalog = createRawImageCatalog(join(work, "store"));
  const snap = await catalog.addSnapshot("s-0000000000000bench", "vda", src);
  await rm(src);

  await dropCaches();
  const dd = await timed("dd", [
    "if=/dev/zero",
    `of=${join(work, "dd.img")}`,
    "bs=4M",
    `count=${size / (4 * MiB)}`,
    "conv=fdatasync",
    "status=none",
  ]);
  await rm(join(work, "dd.img"));
  // A second reference: copying the snapshot's own data file (read and write on the same disk, no checks).
  await dropCaches();
  const copy = await timed("dd", [
    `if=${catalog.dataPath(snap)}`,
    `of=${join(work, "copy.img")}`,
    "bs=4M",
    "conv=fdatasync",
    "status=none",
  ]);
  await rm(join(work, "copy.img"));

  await dropCaches();
  const launcher = createLauncher({ dataDir: join(work, "launch"), catalog });
  const t0 = performance.now();
  const out = await launcher.launch({
    jobID: "mgnjob-0000000000000bench",
    sourceServerID: "s-0000000000000bench",
    initiatedBy: "START_TEST",
    instanceId: "i-0000000000000bec1",
    replicating: false,
    launchConfiguration: { ferry: { target: "image" } },
    log: async () => {},
    signal: new AbortController().signal,
  });
  const seconds = (performance.now() - t0) / 1000;
  const written = (await stat(out.details.disks[0]!.path)).blocks * 512;
  await launcher.close();

  const ddRate = mbps(size, dd.seconds);
  const launchRate = mbps(size, seconds);
  process.stdout.write(
    [
      `snapshot ${snap.snapshotId}: ${(size / GiB).toFixed(1)} GiB, every block data (verified reads)`,
      `dd if=/dev/zero bs=4M conv=fdatasync : ${dd.seconds.toFixed(2)} s  ${ddRate.toFixed(0)} MB/s`,
      `dd copy of the snapshot's data file  : ${copy.seconds.toFixed(2)} s  ${mbps(size, copy.seconds).toFixed(0)} MB/s`,
      `ferry launch (image target, raw)     : ${seconds.toFixed(2)} s  ${launchRate.toFixed(0)} MB/s  (${(written / GiB).toFixed(2)} GiB allocated)`,
      `P8 launch / sequential write = ${ratio(launchRate, ddRate)} (target ≥ 0.80); launch / copy = ${ratio(launchRate, mbps(size, copy.seconds))}`,
      "",
    ].join("\n"),
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
