import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderUnit, systemdRuns, UNIT_NAME, writeUnit } from "./service.ts";

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
