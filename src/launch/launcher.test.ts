/**
 * The launcher with the image target over a raw-image snapshot catalog:
 * byte-identical sparse images, the snapshot left untouched, snapshot choice
 * and its job-log events, damaged data failing loudly, qcow2, terminate and
 * relaunch; with root: a snapshot taken while the source writes launches to
 * an image that passes `fsck -n` with the files of that consistency point,
 * and post-launch actions edit the launched copy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFile, spawn } from "node:child_process";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLauncher } from "./launcher.ts";
import type { LaunchLogEntry, LaunchRequest, FerryLaunchConfiguration } from "../model/launch.ts";
import { createRawImageCatalog } from "../../test/support/raw-image-catalog.ts";
import { createScratch, haveRoot, attachLoop, mkfs, mount, sh } from "../../test/support/loop.ts";
import type { FerryError } from "../lib/errors.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
let n = 0;

function request(
  over: Partial<LaunchRequest> & { launchConfiguration?: FerryLaunchConfiguration } = {},
): LaunchRequest & { events: LaunchLogEntry[] } {
  const events: LaunchLogEntry[] = [];
  return {
    jobID: "mgnjob-0123456789abcdef0",
    sourceServerID: "s-0123456789abcdef0",
    initiatedBy: "START_TEST",
    instanceId: `i-${(n++).toString(16).padStart(17, "0")}`,
    replicating: false,
    launchConfiguration: {},
    log: async (e) => {
      events.push(e);
    },
    signal: new AbortController().signal,
    ...over,
    events,
  };
}

async function sha(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

/** 24 MiB: random runs, text, and long zero stretches. */
async function sourceImage(path: string): Promise<void> {
  const buf = Buffer.alloc(24 * MiB);
  randomBytes(3 * MiB).copy(buf, 1 * MiB);
  Buffer.from("ferry ".repeat(200_000)).copy(buf, 9 * MiB);
  randomBytes(100_000).copy(buf, 20 * MiB + 12_345);
  await writeFile(path, buf);
}

test("image target: a byte-identical sparse raw image, the snapshot untouched; terminate and launch again", async () => {
  const s = await createScratch("ferry-launch-");
  try {
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    await sourceImage(join(s.dir, "src.img"));
    const snap = await catalog.addSnapshot("s-0123456789abcdef0", "vda", join(s.dir, "src.img"));
    const before = await sha(catalog.dataPath(snap));
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    const req = request();
    const out = await launcher.launch(req);
    assert.deepEqual(
      req.events.map((e) => e.event),
      ["USING_PREVIOUS_SNAPSHOT", "CONVERSION_START", "CONVERSION_END", "LAUNCH_START"],
    );
    assert.match(req.events[0]!.details!, new RegExp(snap.snapshotId));
    assert.equal(out.firstBoot, "STOPPED");
    assert.equal(out.details.target, "image");
    const disk = out.details.disks[0]!;
    assert.equal(disk.format, "raw");
    assert.ok(disk.path.startsWith(out.details.location));
    assert.match(req.events[2]!.details!, new RegExp(disk.path.replaceAll("/", "\\/")));
    assert.equal(await sha(disk.path), await sha(join(s.dir, "src.img")));
    // Zeros are holes: far less allocated than the 24 MiB size.
    const st = await stat(disk.path);
    assert.ok(st.blocks * 512 < 8 * MiB, `allocated ${st.blocks * 512}`);
    assert.equal(await sha(catalog.dataPath(snap)), before, "the snapshot was modified");

    await launcher.terminate(req.sourceServerID, out.details);
    assert.equal(existsSync(out.details.location), false);
    const again = await launcher.launch(request());
    assert.equal(await sha(again.details.disks[0]!.path), await sha(join(s.dir, "src.img")));
  } finally {
    await s.cleanup();
  }
});

test("snapshot choice: fresh when replicating (SNAPSHOT_START/END), the previous one when none comes, none → fails", async () => {
  const s = await createScratch("ferry-launch-");
  try {
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    await assert.rejects(
      launcher.launch(request()),
      (e: FerryError) => e.code === "NO_SNAPSHOT" && /no snapshot/.test(e.message),
    );
    await sourceImage(join(s.dir, "src.img"));
    const old = await catalog.addSnapshot("s-0123456789abcdef0", "vda", join(s.dir, "src.img"));
    // Replicating, but no consistency point comes: SNAPSHOT_FAIL, then the previous snapshot.
    const r1 = request({ replicating: true });
    await launcher.launch(r1);
    assert.deepEqual(
      r1.events.slice(0, 3).map((e) => e.event),
      ["SNAPSHOT_START", "SNAPSHOT_FAIL", "USING_PREVIOUS_SNAPSHOT"],
    );
    assert.match(r1.events[2]!.details!, new RegExp(old.snapshotId));
    // A live disk that changed since: the fresh snapshot has the change.
    const live = join(s.dir, "live.img");
    await run("cp", [join(s.dir, "src.img"), live]);
    const fh = await (await import("node:fs/promises")).open(live, "r+");
    await fh.write(Buffer.from("changed after the old snapshot"), 0, undefined, 5 * MiB);
    await fh.close();
    catalog.attachLive("s-0123456789abcdef0", [{ diskId: "vda", path: live }]);
    const r2 = request({ replicating: true });
    const out = await launcher.launch(r2);
    assert.deepEqual(
      r2.events.slice(0, 2).map((e) => e.event),
      ["SNAPSHOT_START", "SNAPSHOT_END"],
    );
    assert.equal(await sha(out.details.disks[0]!.path), await sha(live));
    assert.equal((await catalog.list("s-0123456789abcdef0")).length, 2);
  } finally {
    await s.cleanup();
  }
});

test("damaged snapshot data: the launch fails naming the block, and leaves no image behind", async () => {
  const s = await createScratch("ferry-launch-");
  try {
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    await sourceImage(join(s.dir, "src.img"));
    const snap = await catalog.addSnapshot("s-0123456789abcdef0", "vda", join(s.dir, "src.img"));
    const fh = await (await import("node:fs/promises")).open(catalog.dataPath(snap), "r+");
    const at = 9 * MiB + 3 * 65536 + 77;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    const req = request();
    await assert.rejects(launcher.launch(req), (e: FerryError) => {
      assert.equal(e.code, "SNAPSHOT_DAMAGED");
      assert.match(e.message, new RegExp(`offset ${9 * MiB + 3 * 65536}\\b`));
      assert.match(e.message, /Disk vda/);
      return true;
    });
    assert.equal(existsSync(join(s.dir, "launch", "instances", req.sourceServerID, req.instanceId)), false);
  } finally {
    await s.cleanup();
  }
});

test("image target: qcow2 when asked and qemu-img is present", async (t) => {
  if (
    !(await run("qemu-img", ["--version"]).then(
      () => true,
      () => false,
    ))
  ) {
    t.skip("qemu-img not installed");
    return;
  }
  const s = await createScratch("ferry-launch-");
  try {
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    await sourceImage(join(s.dir, "src.img"));
    await catalog.addSnapshot("s-0123456789abcdef0", "vda", join(s.dir, "src.img"));
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    const out = await launcher.launch(request({ launchConfiguration: { ferry: { imageFormat: "qcow2" } } }));
    const disk = out.details.disks[0]!;
    assert.equal(disk.format, "qcow2");
    assert.match(disk.path, /\.qcow2$/);
    await run("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", disk.path, join(s.dir, "src.img")]);
  } finally {
    await s.cleanup();
  }
});

test("snapshot while the source writes: the launched image passes fsck -n and has the files of that consistency point", async (t) => {
  if (!haveRoot()) {
    t.skip("needs root (loop devices, mount, fsfreeze)");
    return;
  }
  const s = await createScratch("ferry-launch-");
  let writer: ReturnType<typeof spawn> | undefined;
  try {
    const image = join(s.dir, "live.img");
    await writeFile(image, "");
    await run("truncate", ["-s", "96M", image]);
    const dev = await attachLoop(s, image);
    await mkfs(dev);
    const mnt = await mount(s, dev, "src");
    // A writer in its own process: fsfreeze blocks its writes, never this test's event loop.
    writer = spawn(
      "sh",
      [
        "-c",
        'i=0; while :; do i=$((i+1)); head -c $(( (i % 7 + 1) * 40000 )) /dev/urandom > "$0/f$((i % 40)).tmp" && mv "$0/f$((i % 40)).tmp" "$0/f$((i % 40))"; [ $((i % 10)) -eq 0 ] && sync; done',
        mnt,
      ],
      { stdio: "ignore" },
    );
    s.defer(async () => writer?.kill("SIGKILL"));
    await new Promise((r) => setTimeout(r, 1500));
    let atPoint = "";
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    catalog.attachLive("s-0123456789abcdef0", [{ diskId: "vda", path: dev }], {
      async quiesce() {
        await sh("fsfreeze", ["-f", mnt]);
        atPoint = await sh("sh", [
          "-c",
          `cd ${mnt} && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 sha256sum`,
        ]);
      },
      async resume() {
        await sh("fsfreeze", ["-u", mnt]);
      },
    });
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    const out = await launcher.launch(request({ replicating: true }));
    writer.kill("SIGKILL");
    const launched = out.details.disks[0]!.path;
    await run("e2fsck", ["-fn", launched]);
    const ldev = await attachLoop(s, launched);
    const lmnt = join(s.dir, "launched");
    await mkdir(lmnt);
    await sh("mount", ["-o", "ro,noload", ldev, lmnt]);
    s.defer(() => sh("umount", [lmnt]));
    const there = await sh("sh", [
      "-c",
      `cd ${lmnt} && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 sha256sum`,
    ]);
    assert.ok(atPoint.split("\n").length > 10, atPoint);
    assert.equal(there, atPoint);
  } finally {
    writer?.kill("SIGKILL");
    await s.cleanup();
  }
});

test("post-launch actions run on a read-write mount of the launched copy, with output and status; loops released", async (t) => {
  if (!haveRoot()) {
    t.skip("needs root (loop devices, mount)");
    return;
  }
  const s = await createScratch("ferry-launch-");
  try {
    const image = join(s.dir, "src.img");
    await writeFile(image, "");
    await run("truncate", ["-s", "32M", image]);
    const root = join(s.dir, "rootfs");
    await mkdir(join(root, "etc"), { recursive: true });
    await writeFile(join(root, "etc", "fstab"), "UUID=old-source-uuid / ext4 defaults 0 1\n");
    await run("mkfs.ext4", ["-q", "-F", "-d", root, image]);
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    const snap = await catalog.addSnapshot("s-0123456789abcdef0", "vda", image);
    const before = await sha(catalog.dataPath(snap));
    const scripts = join(s.dir, "scripts");
    await mkdir(scripts);
    await writeFile(
      join(scripts, "rewrite-fstab"),
      '#!/bin/sh\nset -e\nsed -i "s/UUID=old-source-uuid/\\/dev\\/vda/" "$1/etc/fstab"\necho "fstab now: $(cat "$FERRY_ROOT/etc/fstab")"\n',
    );
    await writeFile(join(scripts, "fails"), "#!/bin/sh\necho broken >&2\nexit 3\n");
    await chmod(join(scripts, "rewrite-fstab"), 0o755);
    await chmod(join(scripts, "fails"), 0o755);
    const launcher = createLauncher({
      dataDir: join(s.dir, "launch"),
      catalog,
      postLaunchScriptsDir: scripts,
    });
    const postLaunchActions = {
      deployment: "TEST_AND_CUTOVER" as const,
      ssmDocuments: [
        { actionName: "fstab", ssmDocumentName: "rewrite-fstab", timeoutSeconds: 30 },
        { actionName: "broken", ssmDocumentName: "fails", mustSucceedForCutover: true },
      ],
    };
    const req = request({ launchConfiguration: { postLaunchActions } });
    const out = await launcher.launch(req);
    assert.deepEqual(
      out.postLaunchActions.map((a) => [a.actionName, a.executionStatus, a.failureReason]),
      [
        ["fstab", "SUCCESS", undefined],
        ["broken", "FAILED", "exit status 3"],
      ],
    );
    const end = req.events.find((e) => e.event === "CONVERSION_END")!;
    assert.match(end.details!, /fstab now: \/dev\/vda \/ ext4/);
    assert.match(end.details!, /broken \(fails\): FAILED, exit status 3\nbroken/);
    const { stdout } = await run("debugfs", ["-R", "cat /etc/fstab", out.details.disks[0]!.path]);
    assert.equal(stdout, "/dev/vda / ext4 defaults 0 1\n");
    assert.equal(await sha(catalog.dataPath(snap)), before, "the snapshot was modified");
    const loops = await sh("losetup", ["-j", out.details.disks[0]!.path]);
    assert.equal(loops.trim(), "", "a loop device was left attached");
    // A cutover with an action that must succeed fails the launch (CONVERSION_FAIL).
    const cut = request({ initiatedBy: "START_CUTOVER", launchConfiguration: { postLaunchActions } });
    await assert.rejects(launcher.launch(cut), /broken failed and must succeed for cutover/);
    assert.ok(cut.events.some((e) => e.event === "CONVERSION_FAIL"));
    assert.equal((await sh("losetup", ["-a"])).includes(join(s.dir, "launch")), false);
  } finally {
    await s.cleanup();
  }
});

test("qemu target: STOPPED disposition boots nothing; a disk that never shows the marker is UNKNOWN, and terminate stops qemu", async (t) => {
  if (
    !(await run("qemu-system-x86_64", ["--version"]).then(
      () => true,
      () => false,
    ))
  ) {
    t.skip("qemu-system-x86_64 not installed");
    return;
  }
  const s = await createScratch("ferry-launch-");
  try {
    const catalog = createRawImageCatalog(join(s.dir, "store"));
    await sourceImage(join(s.dir, "src.img"));
    await catalog.addSnapshot("s-0123456789abcdef0", "vda", join(s.dir, "src.img"));
    const launcher = createLauncher({ dataDir: join(s.dir, "launch"), catalog });
    s.defer(() => launcher.close());
    const stopped = await launcher.launch(
      request({ launchConfiguration: { launchDisposition: "STOPPED", ferry: { target: "qemu" } } }),
    );
    assert.equal(stopped.firstBoot, "STOPPED");
    assert.equal(stopped.details.pid, undefined);
    assert.equal(existsSync(join(stopped.details.location, "console.log")), false);

    const started = await launcher.launch(
      request({
        launchConfiguration: { ferry: { target: "qemu", bootTimeoutSeconds: 4, bootMarker: "never" } },
      }),
    );
    assert.equal(started.firstBoot, "WAITING");
    const pid = started.details.pid!;
    assert.ok(existsSync(`/proc/${pid}`));
    assert.equal(await started.firstBootResult, "UNKNOWN");
    await launcher.terminate("s-0123456789abcdef0", started.details);
    assert.equal(existsSync(started.details.location), false);
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
    const alive =
      existsSync(`/proc/${pid}`) && !(await readFile(`/proc/${pid}/stat`, "utf8")).includes(") Z ");
    assert.equal(alive, false, "qemu still runs after terminate");
  } finally {
    await s.cleanup();
  }
});
