/**
 * Launches from the real staging store (quality.md rows 11 and 13): a mounted
 * ext4 on a loop device replicates continuously (eBPF tracker, consistency
 * points with fsfreeze) to a real replicator while a writer keeps changing
 * files. A launch takes a fresh snapshot at the next consistency point: the
 * launched image passes `e2fsck -fn`; with the writer held, its files equal
 * the source's. The snapshot reads back unchanged after the launches.
 * Needs root and bpftrace; skips otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ContinuousStatus } from "../../src/agent/continuous.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { EbpfTracker } from "../../src/agent/tracker/index.ts";
import { findBpftrace } from "../../src/agent/tracker/bpftrace.ts";
import { createLauncher } from "../../src/launch/index.ts";
import type { LaunchLogEntry, LaunchRequest } from "../../src/model/launch.ts";
import { attachLoop, createImage, createScratch, haveRoot, mount, sh } from "../support/loop.ts";
import { startTestReplicator } from "../support/data-plane.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SERVER = "s-launchrepl000000";

const skip = !haveRoot()
  ? "needs root (loop device, mount, eBPF)"
  : !(await findBpftrace())
    ? "needs bpftrace (apt-get install bpftrace)"
    : false;

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** sha256sum of every file under `dir`, sorted by name. */
async function fileSums(dir: string): Promise<string> {
  return sh("sh", [
    "-c",
    `cd "${dir}" && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 -r sha256sum`,
  ]);
}

test(
  "launch from the real staging store while the source writes: fsck-clean, the files of the consistency point",
  { skip },
  async () => {
    const s = await createScratch("ferry-launch-repl-");
    let writer: ChildProcess | undefined;
    const ac = new AbortController();
    let sync: Promise<unknown> | undefined;
    let tracker: EbpfTracker | undefined;
    try {
      const image = await createImage(s, "src.img", 128 * MiB);
      const dev = await attachLoop(s, image);
      await sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev]);
      const mnt = await mount(s, dev, "src");
      s.defer(() => sh("fsfreeze", ["-u", mnt]).catch(() => undefined));
      await mkdir(join(mnt, "files"));
      const rep = await startTestReplicator(join(s.dir, "replicator"));
      s.defer(() => rep.replicator.close());
      tracker = new EbpfTracker({ devicePath: dev, stateDir: join(s.dir, "tracker") });
      await tracker.start();
      const statuses: ContinuousStatus[] = [];
      sync = replicateDisk({
        sourcePath: dev,
        sourceServerId: SERVER,
        diskId: "vda",
        endpoint: rep.endpoint,
        stateDir: join(s.dir, "agent"),
        hashBlockSize: 4096,
        signal: ac.signal,
        continuous: {
          tracker,
          intervalMs: 100,
          consistencyIntervalMs: 1000,
          freeze: [mnt],
          freezeMaxMs: 3000,
          onStatus: (st) => statuses.push(st),
        },
      });
      sync.catch(() => {});
      await until("continuous replication", () => statuses.length > 0, 90_000);
      writer = spawn(
        "sh",
        [
          "-c",
          'i=0; while :; do i=$((i+1)); f="$0/files/f$((i % 30))"; head -c $(( (i % 9 + 1) * 30000 )) /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f"; [ $((i % 8)) -eq 0 ] && sync; done',
          mnt,
        ],
        { stdio: "ignore" },
      );
      await new Promise((r) => setTimeout(r, 2000));

      const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog: rep.replicator.catalog });
      s.defer(() => launcher.close());
      const request = (instanceId: string): LaunchRequest & { events: LaunchLogEntry[] } => {
        const events: LaunchLogEntry[] = [];
        return {
          jobID: "mgnjob-0123456789abcdef0",
          sourceServerID: SERVER,
          initiatedBy: "START_TEST",
          instanceId,
          replicating: true,
          launchConfiguration: { ferry: { target: "image", snapshotTimeoutSeconds: 30 } },
          log: async (e) => {
            events.push(e);
          },
          signal: new AbortController().signal,
          events,
        };
      };

      // 1. The writer running: a fresh snapshot at the next consistency point, fsck-clean.
      const live = request("i-00000000000000a01");
      const out = await launcher.launch(live);
      assert.deepEqual(
        live.events.slice(0, 2).map((e) => e.event),
        ["SNAPSHOT_START", "SNAPSHOT_END"],
      );
      const launched = out.details.disks[0]!.path;
      await run("e2fsck", ["-fn", launched]);

      // 2. The writer held: after a consistency point, the launched files are the source's.
      writer.kill("SIGSTOP");
      const seen = statuses.length;
      await until("a consistency point with the writer held", () =>
        statuses.slice(seen).some((st) => st.lastConsistentAt !== null && st.backloggedBytes === 0),
      );
      const held = request("i-00000000000000a02");
      const out2 = await launcher.launch(held);
      const sums = await fileSums(mnt);
      writer.kill("SIGCONT");
      const ldev = await attachLoop(s, out2.details.disks[0]!.path);
      const lmnt = join(s.dir, "launched");
      await mkdir(lmnt);
      await sh("mount", ["-o", "ro,noload", ldev, lmnt]);
      s.defer(() => sh("umount", [lmnt]));
      assert.ok(sums.split("\n").length > 10, sums);
      assert.equal(await fileSums(lmnt), sums);

      // The launches only read: the snapshot still reads back block-verified, identical to the first launch.
      const snapId = out.details.disks[0]!.snapshotId;
      const reader = await rep.replicator.catalog.open(SERVER, "vda", snapId);
      try {
        const first = await reader.read(0, 4 * MiB);
        const { stdout } = await run("head", ["-c", String(4 * MiB), launched], {
          encoding: "buffer",
          maxBuffer: 8 * MiB,
        });
        assert.ok(first.equals(stdout));
      } finally {
        await reader.close();
      }
    } finally {
      writer?.kill("SIGKILL");
      ac.abort();
      await sync?.catch(() => undefined);
      await tracker?.stop();
      await s.cleanup();
    }
  },
);
