/** `ferry launch settings|log` through main(), on a control plane's data directory. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "./main.ts";
import { createTestPlane, registration } from "../control/testing.ts";
import type { Credentials } from "../control/testing.ts";
import type { Launcher } from "../model/launch.ts";
import type { Job } from "../model/mgn-shapes.gen.ts";

async function ferry(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = "";
  let e = "";
  out.on("data", (c: Buffer) => (o += c.toString()));
  err.on("data", (c: Buffer) => (e += c.toString()));
  const code = await main(args, {
    stdout: out,
    stderr: err,
    isTTY: false,
    env: {},
    signal: new AbortController().signal,
  });
  return { code, out: o, err: e };
}

const launcher: Launcher = {
  async launch(req) {
    await req.log({ event: "USING_PREVIOUS_SNAPSHOT", details: "disk vda: snapshot snap-1" });
    await req.log({
      event: "CONVERSION_END",
      details: "vda → /x/vda.raw\npost-launch action fstab: SUCCESS",
    });
    return {
      details: { target: "image", location: "/x", disks: [] },
      firstBoot: "STOPPED",
      postLaunchActions: [],
    };
  },
  async terminate() {},
  async releaseStagingResources() {},
  async close() {},
};

test("ferry launch settings sets Ferry's launch settings (validated); ferry launch log shows a job with details", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-cli-launch-"));
  try {
    const t = await createTestPlane({ dataDir: dir, launcher });
    let id: string;
    let jobID: string;
    try {
      await t.call("/InitializeService");
      const reg = await t.call("/ferry/agent/register", registration("cli-launch-1"));
      id = reg.body.sourceServerID as string;
      await t.call(
        "/ferry/agent/report",
        { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
        { creds: reg.body.agentCredentials as Credentials },
      );
      jobID = ((await t.call("/StartTest", { sourceServerIDs: [id] })).body.job as Job).jobID;
      for (let i = 0; i < 100; i++) {
        const j = ((await t.call("/DescribeJobs", {})).body.items as Job[])[0]!;
        if (j.status === "COMPLETED") break;
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await t.close();
    }
    const set = await ferry([
      "launch",
      "settings",
      id,
      "--target",
      "qemu",
      "--boot-marker",
      "READY",
      "--boot-timeout",
      "90",
      "--json",
      "--data-dir",
      dir,
    ]);
    assert.equal(set.code, 0, set.err);
    assert.deepEqual(JSON.parse(set.out).ferry, {
      target: "qemu",
      bootMarker: "READY",
      bootTimeoutSeconds: 90,
    });
    const more = await ferry(["launch", "settings", id, "--image-format", "qcow2", "--data-dir", dir]);
    assert.equal(more.code, 0, more.err);
    assert.match(more.out, /target qemu/);
    assert.match(more.out, /imageFormat: qcow2/);
    assert.match(more.out, /bootMarker: READY/);
    const bad = await ferry(["launch", "settings", id, "--image-format", "vmdk", "--data-dir", dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /imageFormat/);
    const tcg = await ferry(["launch", "settings", id, "--accelerator", "tcg", "--json", "--data-dir", dir]);
    assert.equal(tcg.code, 0, tcg.err);
    assert.equal(JSON.parse(tcg.out).ferry.accelerator, "tcg");
    const badAccel = await ferry(["launch", "settings", id, "--accelerator", "hvf", "--data-dir", dir]);
    assert.equal(badAccel.code, 1);
    assert.match(badAccel.err, /accelerator/);
    const missing = await ferry(["launch", "settings", "s-0123456789abcdef0", "--data-dir", dir]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /No source server s-0123456789abcdef0/);

    const log = await ferry(["launch", "log", jobID, "--data-dir", dir]);
    assert.equal(log.code, 0, log.err);
    assert.match(log.out, new RegExp(`${jobID} LAUNCH START_TEST COMPLETED`));
    assert.match(log.out, /USING_PREVIOUS_SNAPSHOT/);
    assert.match(log.out, /\n {4}post-launch action fstab: SUCCESS\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
