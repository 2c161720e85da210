/**
 * `ferry server --staging-store`: a control plane launching from a
 * replicator's staging store opened read-only. A disk replicated to a real
 * replicator (initial sync → a snapshot) is launched as a test instance with
 * the image target through the AWS CLI; the image equals the source. Without
 * --staging-store the launch operations refuse with a ValidationException.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.ts";
import { registration } from "../../src/control/testing.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { ScanTracker } from "../../src/agent/tracker/index.ts";
import { createScratch } from "../support/loop.ts";
import { startTestReplicator, writeMixedImage } from "../support/data-plane.ts";
import { MgnCallError, agentCall, awsCliDriver } from "./control-plane-drivers.ts";

function capture() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c: Buffer) => (text += c.toString("utf8")));
  return { stream, text: () => text };
}

async function startFerryServer(args: string[]) {
  const out = capture();
  const err = capture();
  const controller = new AbortController();
  const done = main(["server", "--listen", "127.0.0.1:0", "--region", "eu-central-1", "--json", ...args], {
    stdout: out.stream,
    stderr: err.stream,
    isTTY: false,
    env: {},
    signal: controller.signal,
  });
  const deadline = Date.now() + 30_000;
  while (!out.text().includes("\n")) {
    if (Date.now() > deadline) throw new Error(`ferry server did not start: ${err.text()}`);
    const code = await Promise.race([
      done,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
    ]);
    if (code !== undefined) throw new Error(`ferry server exited ${code}: ${err.text()}`);
  }
  const info = JSON.parse(out.text().split("\n")[0]!) as { endpoint: string; caFile: string };
  return {
    endpoint: { url: info.endpoint, caFile: info.caFile, region: "eu-central-1" },
    async stop() {
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
    {
      stdout: out.stream,
      stderr: capture().stream,
      isTTY: false,
      env: {},
      signal: new AbortController().signal,
    },
  );
  assert.equal(code, 0);
  return JSON.parse(out.text()) as { accessKeyId: string; secretAccessKey: string };
}

async function walk(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push({ path: p, size: (await stat(p)).size });
  }
  return out;
}

const sha = async (p: string) =>
  createHash("sha256")
    .update(await readFile(p))
    .digest("hex");

test("ferry server --staging-store launches from a replicator's store; without it launches refuse", async () => {
  const s = await createScratch("ferry-launch-server-");
  try {
    const serverDir = join(s.dir, "server");
    const server = await startFerryServer([
      "--data-dir",
      serverDir,
      "--staging-store",
      join(s.dir, "replicator"),
    ]);
    s.defer(() => server.stop());
    const operator = await operatorKey(serverDir);
    const cli = awsCliDriver(server.endpoint, operator);
    await cli.call("InitializeService");
    const reg = await agentCall(
      server.endpoint,
      operator,
      "/ferry/agent/register",
      registration("launch-server-1"),
    );
    const id = reg.body.sourceServerID as string;
    const agent = reg.body.agentCredentials as { accessKeyId: string; secretAccessKey: string };

    // The replicator (another process in production) takes the disk; its initial sync leaves a snapshot.
    const disk = join(s.dir, "disk.img");
    await writeMixedImage(disk, 24 * 1024 * 1024);
    const rep = await startTestReplicator(join(s.dir, "replicator"));
    const stop = new AbortController();
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: id,
      diskId: "sda",
      endpoint: rep.endpoint,
      stateDir: join(s.dir, "agent"),
      signal: stop.signal,
      continuous: {
        tracker: new ScanTracker({ devicePath: disk, stateDir: join(s.dir, "tracker"), intervalMs: 0 }),
        consistencyIntervalMs: 300,
      },
    });
    sync.catch(() => {});
    for (let i = 0; i < 240 && !(await rep.replicator.catalog.list(id)).length; i++)
      await new Promise((r) => setTimeout(r, 250));
    stop.abort();
    await sync.catch(() => undefined);
    await rep.replicator.close();

    await agentCall(server.endpoint, agent, "/ferry/agent/report", {
      sourceServerID: id,
      dataReplicationState: "CONTINUOUS",
    });
    const job = ((await cli.call("StartTest", { sourceServerIDs: [id] })).job as { jobID: string }).jobID;
    let done: Record<string, unknown> | undefined;
    for (let i = 0; i < 120 && done?.status !== "COMPLETED"; i++) {
      await new Promise((r) => setTimeout(r, 250));
      done = (
        (await cli.call("DescribeJobs", { filters: { jobIDs: [job] } })).items as Record<string, unknown>[]
      )[0];
    }
    const events = ((await cli.call("DescribeJobLogItems", { jobID: job })).items as { event: string }[]).map(
      (e) => e.event,
    );
    assert.equal(done?.status, "COMPLETED");
    assert.equal(
      (done!.participatingServers as { launchStatus: string }[])[0]!.launchStatus,
      "LAUNCHED",
      events.join(),
    );
    // Opened read-only, the store cannot take a snapshot: the newest one is used.
    assert.ok(events.includes("USING_PREVIOUS_SNAPSHOT"), events.join());
    assert.ok(!events.includes("SNAPSHOT_START"), events.join());
    const image = join(serverDir, "launch", "instances", id);
    const [instance] = await readdir(image);
    assert.equal(await sha(join(image, instance!, "sda.raw")), await sha(disk));

    // Damaged staging data (fault row 13): the next launch fails loudly, and writes no image.
    const volume = join(s.dir, "replicator", "volumes", id, "sda");
    const files = await walk(volume);
    const biggest = files.sort((a, b) => b.size - a.size)[0]!;
    const fh = await open(biggest.path, "r+");
    const junk = Buffer.alloc(4096, 0x5a);
    await fh.write(junk, 0, junk.length, Math.floor(biggest.size / 2));
    await fh.close();
    const job2 = ((await cli.call("StartTest", { sourceServerIDs: [id] })).job as { jobID: string }).jobID;
    let failed: Record<string, unknown> | undefined;
    for (let i = 0; i < 120 && failed?.status !== "COMPLETED"; i++) {
      await new Promise((r) => setTimeout(r, 250));
      failed = (
        (await cli.call("DescribeJobs", { filters: { jobIDs: [job2] } })).items as Record<string, unknown>[]
      )[0];
    }
    assert.equal((failed!.participatingServers as { launchStatus: string }[])[0]!.launchStatus, "FAILED");
    const items = (await cli.call("DescribeJobLogItems", { jobID: job2 })).items as {
      event: string;
      eventData?: { rawError?: string };
    }[];
    const lf = items.find((e) => e.event === "LAUNCH_FAILED");
    assert.match(lf?.eventData?.rawError ?? "", /damaged/, JSON.stringify(items));
    assert.deepEqual(await readdir(image), [], "no image was left behind");
    await server.stop();

    // The same control plane without a staging store: no launches, a clear refusal, no job.
    const plain = await startFerryServer(["--data-dir", serverDir]);
    s.defer(() => plain.stop());
    await assert.rejects(
      awsCliDriver(plain.endpoint, operator).call("StartCutover", { sourceServerIDs: [id] }),
      (e) => {
        assert.ok(e instanceof MgnCallError);
        assert.equal(e.type, "ValidationException");
        assert.match(e.message, /staging-store/);
        return true;
      },
    );
  } finally {
    await s.cleanup();
  }
});
