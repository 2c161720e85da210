import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { join } from "node:path";
import { DescribeSourceServersCommand, InitializeServiceCommand, MgnClient } from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { createScratch } from "../support/loop.ts";

const FERRY = join(import.meta.dirname, "..", "..", "bin", "ferry");

interface UpInfo {
  endpoint: string;
  region: string;
  caFile: string;
  accessKeyId: string;
  secretAccessKey: string;
  replicator: string;
  replicatorFingerprint: string;
}

function startUp(dataDir: string): Promise<{ info: UpInfo; stop: () => Promise<number | null> }> {
  const child = spawn(
    FERRY,
    ["up", "--json", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--replicator-listen", "127.0.0.1:0"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`ferry up did not print its JSON line: ${err}`)), 30000);
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const i = out.indexOf("\n");
      if (i < 0) return;
      clearTimeout(timer);
      resolve({
        info: JSON.parse(out.slice(0, i)) as UpInfo,
        stop: () =>
          new Promise((r) => {
            child.once("exit", (code) => r(code));
            child.kill("SIGTERM");
          }),
      });
    });
    child.on("exit", (code) => reject(new Error(`ferry up exited ${code}: ${err}`)));
  });
}

test("ferry up --json starts the control plane and a replicator; the SDK drives it; the key survives a restart", async () => {
  const scratch = await createScratch();
  try {
    const dataDir = join(scratch.dir, "ferry");
    const first = await startUp(dataDir);
    const { info } = first;
    assert.match(info.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(info.accessKeyId, /^[A-Z0-9]{16,}$/);
    assert.match(info.replicatorFingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const client = new MgnClient({
      endpoint: info.endpoint,
      region: info.region,
      credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(info.caFile) }) }),
    });
    await client.send(new InitializeServiceCommand({}));
    const servers = await client.send(new DescribeSourceServersCommand({}));
    assert.deepEqual(servers.items, []);
    client.destroy();
    assert.equal(await first.stop(), 0);

    const second = await startUp(dataDir);
    assert.equal(second.info.accessKeyId, info.accessKeyId);
    assert.equal(second.info.caFile, info.caFile);
    assert.equal(second.info.replicatorFingerprint, info.replicatorFingerprint);
    assert.equal(await second.stop(), 0);
  } finally {
    await scratch.cleanup();
  }
});
