import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  installService,
  removeService,
  renderUnit,
  systemdRuns,
  UNIT_NAME,
  unitDirFor,
  writeUnit,
} from "./service.ts";

test("the unit runs the bundled CLI with the state dir and restarts on failure", () => {
  const unit = renderUnit("/opt/ferry-agent", "/opt/ferry-agent/state");
  assert.match(
    unit,
    /^ExecStart=\/opt\/ferry-agent\/bin\/ferry agent run --state-dir \/opt\/ferry-agent\/state$/m,
  );
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
  assert.match(unit, /^After=network-online\.target$/m);
});

test("writeUnit writes ferry-agent.service, world-readable, into the unit directory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-unit-"));
  try {
    const path = await writeUnit(join(dir, "system"), "/opt/a", "/opt/a/state");
    assert.equal(path, join(dir, "system", UNIT_NAME));
    assert.equal(await readFile(path, "utf8"), renderUnit("/opt/a", "/opt/a/state"));
    assert.equal((await stat(path)).mode & 0o777, 0o644);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("systemd counts as running only when /run/systemd/system exists", async () => {
  const root = await mkdtemp(join(tmpdir(), "ferry-sd-"));
  try {
    assert.equal(systemdRuns(root), false);
    await mkdir(join(root, "run/systemd/system"), { recursive: true });
    assert.equal(systemdRuns(root), true);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

const haveSystemctl = spawnSync("systemctl", ["--version"]).status === 0;

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "ferry-sysroot-"));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

test("into a tree no systemd runs in, the unit is enabled offline and removed with its wants link", async () => {
  await withRoot(async (root) => {
    const unitDir = unitDirFor(root);
    const installed = await installService(unitDir, "/opt/a", "/opt/a/state", { root });
    assert.deepEqual(installed, { unitFile: join(unitDir, UNIT_NAME), root, mode: "offline" });
    const link = join(unitDir, "multi-user.target.wants", UNIT_NAME);
    assert.equal(
      await readlink(link),
      `/etc/systemd/system/${UNIT_NAME}`,
      "the link as seen inside the tree",
    );
    if (haveSystemctl) {
      // systemd's own reading of the tree agrees.
      const r = spawnSync("systemctl", [`--root=${root}`, "is-enabled", UNIT_NAME], { encoding: "utf8" });
      assert.equal(r.stdout.trim(), "enabled", r.stderr);
    }

    // A unit of another install is left alone.
    const other = await removeService({
      unitFile: installed.unitFile,
      stateDir: "/opt/b/state",
      root,
      stop: true,
    });
    assert.match(other.join("\n"), /runs another agent install/);
    assert.ok(await exists(installed.unitFile));

    const done = await removeService({
      unitFile: installed.unitFile,
      stateDir: "/opt/a/state",
      root,
      stop: true,
    });
    assert.match(done.join("\n"), /systemd is not running: removed the unit file .*ferry-agent\.service/);
    assert.equal(await exists(installed.unitFile), false);
    assert.equal(await exists(link), false);
    if (haveSystemctl) {
      const r = spawnSync("systemctl", [`--root=${root}`, "is-enabled", UNIT_NAME], { encoding: "utf8" });
      assert.notEqual(r.status, 0, "systemd no longer knows the unit");
    }
    assert.deepEqual(
      await removeService({ unitFile: installed.unitFile, stateDir: "/opt/a/state", root, stop: true }),
      [`no unit file at ${installed.unitFile}`],
    );
  });
});

test("where systemd runs: enable --now after daemon-reload; removal disables (stopping unless it is the service itself), deletes, reloads", async () => {
  await withRoot(async (root) => {
    // systemd cannot run here: a systemctl on PATH records what it is asked, in order.
    await mkdir(join(root, "run/systemd/system"), { recursive: true });
    const bin = join(root, "bin");
    await mkdir(bin);
    const calls = join(root, "calls");
    await writeFile(join(bin, "systemctl"), `#!/bin/sh\necho "$*" >> '${calls}'\n`);
    await chmod(join(bin, "systemctl"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const installed = await installService(unitDirFor(root), "/opt/a", "/opt/a/state", { root });
      assert.equal(installed.mode, "started");
      assert.equal(await readFile(calls, "utf8"), `daemon-reload\nenable --now ${UNIT_NAME}\n`);
      await rm(calls);
      const self = await removeService({
        unitFile: installed.unitFile,
        stateDir: "/opt/a/state",
        root,
        stop: false,
      });
      assert.equal(await readFile(calls, "utf8"), `disable ${UNIT_NAME}\ndaemon-reload\n`);
      assert.match(self[0]!, /this process is the service/);
      assert.equal(await exists(installed.unitFile), false);

      await installService(unitDirFor(root), "/opt/a", "/opt/a/state", { root });
      await rm(calls);
      await removeService({ unitFile: installed.unitFile, stateDir: "/opt/a/state", root, stop: true });
      assert.equal(await readFile(calls, "utf8"), `disable --now ${UNIT_NAME}\ndaemon-reload\n`);
    } finally {
      process.env.PATH = path;
    }
  });
});
