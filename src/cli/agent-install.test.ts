import { test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { main } from "./main.ts";
import { fakeSystem } from "../../test/support/fake-sys.ts";

test("`ferry agent disks --json` reads the /sys and /proc under FERRY_SYS_ROOT, as `agent install` does", async () => {
  const root = await fakeSystem("8:1", {
    sda: { dev: "8:0", sectors: 2048, parts: { sda1: "8:1" } },
    nvme0n1: { dev: "259:0", sectors: 8192 },
  });
  try {
    const stdout = new PassThrough();
    let out = "";
    stdout.on("data", (d: Buffer) => (out += d.toString()));
    const ctx = {
      stdout,
      stderr: new PassThrough(),
      isTTY: false,
      env: { FERRY_SYS_ROOT: root },
      signal: new AbortController().signal,
    };
    assert.equal(await main(["agent", "disks", "--json"], ctx), 0);
    const { disks } = JSON.parse(out) as { disks: { deviceName: string; bytes: number; root: boolean }[] };
    assert.deepEqual(disks.map((d) => [d.deviceName, d.bytes, d.root]).sort(), [
      ["/dev/nvme0n1", 8192 * 512, false],
      ["/dev/sda", 2048 * 512, true],
    ]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
