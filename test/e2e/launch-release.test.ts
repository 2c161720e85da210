/**
 * `ferry server --staging-store` releases a server's staging volumes at
 * FinalizeCutover and DisconnectFromService (MGN removes the replication
 * resources then), safely beside a live replicator session: the session
 * finds the release marker at its next lease renewal and stops; the volume
 * goes only after that. A second FinalizeCutover changes nothing; a release
 * cut short by a control-plane restart is finished by the next start.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { main } from "../../src/cli/main.ts";
import { registration } from "../../src/control/testing.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { ScanTracker } from "../../src/agent/tracker/index.ts";
import { createScratch } from "../support/loop.ts";
import { startTestReplicator, writeMixedImage, type TestReplicator } from "../support/data-plane.ts";
import { MgnCallError, agentCall, awsCliDriver } from "./control-plane-drivers.ts";

function capture() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c: Buffer) => (text += c.toString("utf8")));
  return { stream, text: () => text };
}

const ctx = (out: PassThrough, err: PassThrough, signal: AbortSignal) => ({
  stdout: out,
  stderr: err,
  isTTY: false,
  env: {},
  signal,
});

async function startFerryServer(args: string[]) {
  const out = capture();
  const err = capture();
  const controller = new AbortController();
  const done = main(
    ["server", "--listen", "127.0.0.1:0", "--region", "eu-central-1", "--json", ...args],
    ctx(out.stream, err.stream, controller.signal),
  );
  const deadline = Date.now() + 30_000;
  while (!out.text().includes("\n")) {
    if (Date.now() > deadline) throw new Error(`ferry server did not start: ${err.text()}`);
    const code = await Promise.race([done, sleep(50).then(() => undefined)]);
    if (code !== undefined) throw new Error(`ferry server exited ${code}: ${err.text()}`);
  }
  const info = JSON.parse(out.text().split("\n")[0]!) as { endpoint: string; caFile: string };
  let stopped = false;
  return {
    endpoint: { url: info.endpoint, caFile: info.caFile, region: "eu-central-1" },
    log: () => err.text(),
    async stop() {
      if (stopped) return;
      stopped = true;
      controller.abort();
      assert.equal(await done, 0, err.text());
    },
  };
}

async function operatorKey(dataDir: string) {
  const out = capture();
  const code = await main(
    [
      "access-key",
      "create",
      "--scope",
      "operator",
      "--json",
      "--data-dir",
      dataDir,
      "--region",
      "eu-central-1",
    ],
    ctx(out.stream, capture().stream, new AbortController().signal),
  );
  assert.equal(code, 0);
  return JSON.parse(out.text()) as { accessKeyId: string; secretAccessKey: string };
}

/** Files under a server's volumes, relative to it (the release marker is `released.json`). */
async function volumeFiles(repDir: string, id: string): Promise<string[]> {
  const dir = join(repDir, "volumes", id);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** Only the release marker is left, and it says the release completed. */
async function released(repDir: string, id: string): Promise<boolean> {
  const files = await volumeFiles(repDir, id);
  if (files.length !== 1 || files[0] !== "released.json") return false;
  const marker = JSON.parse(await readFile(join(repDir, "volumes", id, "released.json"), "utf8")) as {
    completedAt?: string;
  };
  return marker.completedAt !== undefined;
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** An agent replicating a disk continuously while a writer keeps changing it (a live session that writes). */
function liveAgent(s: { dir: string }, rep: TestReplicator, id: string, name: string) {
  const disk = join(s.dir, `${name}.img`);
  const stop = new AbortController();
  const run = (async () => {
    await writeMixedImage(disk, 8 * 1024 * 1024);
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: id,
      diskId: "sda",
      endpoint: rep.endpoint,
      stateDir: join(s.dir, `${name}-agent`),
      signal: stop.signal,
      maxReconnects: 2,
      continuous: {
        tracker: new ScanTracker({
          devicePath: disk,
          stateDir: join(s.dir, `${name}-tracker`),
          intervalMs: 0,
        }),
        consistencyIntervalMs: 300,
      },
    });
    sync.catch(() => {});
    const fh = await open(disk, "r+");
    try {
      for (let i = 0; !stop.signal.aborted && i < 10_000; i++) {
        await fh.write(Buffer.alloc(4096, i & 0xff), 0, 4096, (i % 512) * 4096);
        await sleep(100);
      }
    } finally {
      await fh.close();
    }
    await sync.catch(() => undefined);
  })();
  return { disk, stop: async () => (stop.abort(), await run) };
}

test("ferry server --staging-store releases a server's staging volumes at FinalizeCutover and DisconnectFromService", async () => {
  const s = await createScratch("ferry-launch-release-");
  try {
    const serverDir = join(s.dir, "server");
    const repDir = join(s.dir, "replicator");
    let server = await startFerryServer(["--data-dir", serverDir, "--staging-store", repDir]);
    s.defer(() => server.stop());
    const operator = await operatorKey(serverDir);
    let cli = awsCliDriver(server.endpoint, operator);
    await cli.call("InitializeService");
    const rep = await startTestReplicator(repDir);
    s.defer(() => rep.replicator.close());

    const register = async (name: string) => {
      const reg = await agentCall(server.endpoint, operator, "/ferry/agent/register", registration(name));
      return {
        id: reg.body.sourceServerID as string,
        key: reg.body.agentCredentials as { accessKeyId: string; secretAccessKey: string },
      };
    };
    const one = await register("launch-release-1");
    const two = await register("launch-release-2");
    const agent1 = liveAgent(s, rep, one.id, "one");
    s.defer(() => agent1.stop());
    const agent2 = liveAgent(s, rep, two.id, "two");
    s.defer(() => agent2.stop());
    for (const x of [one, two]) {
      await until(`a snapshot of ${x.id}`, async () => (await rep.replicator.catalog.list(x.id)).length > 0);
      await agentCall(server.endpoint, x.key, "/ferry/agent/report", {
        sourceServerID: x.id,
        dataReplicationState: "CONTINUOUS",
      });
    }

    // Server one: a cutover launch, then FinalizeCutover while its agent still streams.
    const job = ((await cli.call("StartCutover", { sourceServerIDs: [one.id] })).job as { jobID: string })
      .jobID;
    await until("the cutover job", async () => {
      const j = (
        (await cli.call("DescribeJobs", { filters: { jobIDs: [job] } })).items as { status: string }[]
      )[0];
      return j?.status === "COMPLETED";
    });
    const before = await volumeFiles(repDir, one.id);
    assert.ok(
      before.some((f) => f.startsWith("sda/seg/")) && before.includes("sda/lease.json"),
      before.join(),
    );
    await cli.call("FinalizeCutover", { sourceServerID: one.id });
    // The live session stops at its next renewal; then the volume goes; only the completed marker stays.
    await until("the release of server one", () => released(repDir, one.id));
    assert.deepEqual(await rep.replicator.catalog.list(one.id), []);
    // The agent, still running, is refused: nothing comes back.
    await sleep(1500);
    assert.deepEqual(await volumeFiles(repDir, one.id), ["released.json"]);
    // A second FinalizeCutover is refused by the lifecycle and changes nothing.
    await assert.rejects(
      cli.call("FinalizeCutover", { sourceServerID: one.id }),
      (e) => e instanceof MgnCallError,
    );
    assert.deepEqual(await volumeFiles(repDir, one.id), ["released.json"]);
    assert.ok(
      (await volumeFiles(repDir, two.id)).some((f) => f.startsWith("sda/seg/")),
      "server two untouched",
    );

    // Server two: DisconnectFromService, and the control plane stops before its live writer has let go.
    await cli.call("DisconnectFromService", { sourceServerID: two.id });
    await server.stop();
    const pending = await volumeFiles(repDir, two.id);
    assert.ok(pending.includes("released.json") && pending.some((f) => f.startsWith("sda/")), pending.join());
    await agent2.stop();
    // The next start finishes it.
    server = await startFerryServer(["--data-dir", serverDir, "--staging-store", repDir]);
    cli = awsCliDriver(server.endpoint, operator);
    await until("the resumed release of server two", () => released(repDir, two.id));
    assert.match(server.log(), /resuming staging releases/);
    await agent1.stop();
  } finally {
    await s.cleanup();
  }
});
