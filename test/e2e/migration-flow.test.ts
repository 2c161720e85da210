/**
 * The whole flow on embedded defaults: `ferry up` (control plane + a local
 * replicator that joins it), `ferry agent install` with an install key (CSR →
 * per-server certificate), `ferry agent run` replicating to the replicator the
 * control plane assigned, status visible through the MGN API (AWS SDK), the
 * replica identical; then a change replicates continuously.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { Agent } from "node:https";
import { join } from "node:path";
import {
  DescribeSourceServersCommand,
  InitializeServiceCommand,
  MgnClient,
  type SourceServer,
} from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { createScratch } from "../support/loop.ts";
import { sha256File, stagingImage } from "../support/data-plane.ts";

const FERRY = join(import.meta.dirname, "..", "..", "bin", "ferry");
const MiB = 1024 * 1024;

function lines(child: ChildProcess, onLine: (l: string) => void): void {
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(FERRY, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    c.on("exit", (code) => resolve({ code, out, err }));
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("ferry up → agent install → agent run: the server replicates to the assigned replicator and shows CONTINUOUS", async () => {
  const scratch = await createScratch();
  const children: ChildProcess[] = [];
  try {
    // The control plane and its local replicator.
    const up = spawn(
      FERRY,
      [
        "up",
        "--json",
        "--data-dir",
        join(scratch.dir, "ferry"),
        "--listen",
        "127.0.0.1:0",
        "--replicator-listen",
        "127.0.0.1:0",
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.push(up);
    const info = await new Promise<{
      endpoint: string;
      region: string;
      caFile: string;
      accessKeyId: string;
      secretAccessKey: string;
    }>((resolve, reject) => {
      lines(up, (l) => resolve(JSON.parse(l)));
      up.on("exit", (c) => reject(new Error(`ferry up exited ${c}`)));
    });
    const mgn = new MgnClient({
      endpoint: info.endpoint,
      region: info.region,
      credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: await readFile(info.caFile) }) }),
    });
    await mgn.send(new InitializeServiceCommand({}));
    const env = { ...process.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
    const keyOut = await run(
      [
        "access-key",
        "create",
        "--scope",
        "install",
        "--json",
        "--data-dir",
        join(scratch.dir, "ferry", "server"),
      ],
      env,
    );
    assert.equal(keyOut.code, 0, keyOut.err);
    const installKey = JSON.parse(keyOut.out) as { accessKeyId: string; secretAccessKey: string };

    // The source: an image standing for its disk; a fake /sys so no real disk is added.
    const disk = join(scratch.dir, "source-disk.img");
    await writeFile(disk, Buffer.concat([randomBytes(6 * MiB), Buffer.alloc(2 * MiB), randomBytes(4 * MiB)]));
    const fakeRoot = join(scratch.dir, "fake-root");
    await mkdir(join(fakeRoot, "sys", "block"), { recursive: true });
    await mkdir(join(fakeRoot, "proc", "self"), { recursive: true });
    await writeFile(join(fakeRoot, "proc", "self", "mountinfo"), "");
    await writeFile(join(scratch.dir, "machine-id"), "0123456789abcdef0123456789abcdef\n");
    const agentEnv = {
      ...env,
      FERRY_SYS_ROOT: fakeRoot,
      FERRY_MACHINE_ID_FILE: join(scratch.dir, "machine-id"),
    };
    const stateDir = join(scratch.dir, "agent-state");
    const install = await run(
      [
        "agent",
        "install",
        "--json",
        "--no-prompt",
        "--no-systemd",
        "--endpoint",
        info.endpoint,
        "--region",
        info.region,
        "--ca-file",
        info.caFile,
        "--aws-access-key-id",
        installKey.accessKeyId,
        "--aws-secret-access-key",
        installKey.secretAccessKey,
        "--devices",
        disk,
        "--state-dir",
        stateDir,
        "--install-dir",
        join(scratch.dir, "opt"),
      ],
      agentEnv,
    );
    assert.equal(install.code, 0, install.err);
    const installed = JSON.parse(install.out.trim().split("\n").at(-1)!) as { sourceServerID: string };
    assert.match(installed.sourceServerID, /^s-[0-9a-zA-Z]{17}$/);

    // The agent service, in the foreground of a child process.
    const agent = spawn(FERRY, ["agent", "run", "--state-dir", stateDir, "--tracker", "scan"], {
      env: agentEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(agent);
    let agentLog = "";
    agent.stderr!.on("data", (d: Buffer) => (agentLog += d.toString()));

    const describe = async (): Promise<SourceServer | undefined> =>
      (
        await mgn.send(
          new DescribeSourceServersCommand({ filters: { sourceServerIDs: [installed.sourceServerID] } }),
        )
      ).items?.[0];
    const continuous = await until(
      "CONTINUOUS in DescribeSourceServers",
      async () => {
        const s = await describe();
        return s?.dataReplicationInfo?.dataReplicationState === "CONTINUOUS" ? s : undefined;
      },
      90000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nagent log:\n${agentLog.slice(-3000)}`);
    });
    const info2 = continuous.dataReplicationInfo!;
    assert.equal(info2.replicatedDisks?.[0]?.totalStorageBytes, 12 * MiB);
    assert.equal(info2.replicatedDisks?.[0]?.replicatedStorageBytes, 12 * MiB);
    assert.equal(info2.replicatedDisks?.[0]?.backloggedStorageBytes, 0);
    assert.equal(continuous.lifeCycle?.state, "READY_FOR_TEST");

    const replica = join(scratch.dir, "ferry", "replicator", "volumes", installed.sourceServerID);
    const [diskId] = await import("node:fs/promises").then((fs) => fs.readdir(replica));
    const replicaDataDir = join(scratch.dir, "ferry", "replicator");
    const replicaImage = () => stagingImage(replicaDataDir, installed.sourceServerID, diskId!);
    assert.equal(await sha256File(await replicaImage()), await sha256File(disk));

    // The replicator's heartbeat carries its newest snapshot (the initial sync's) to the API.
    const snapped = await until(
      "lastSnapshotDateTime in DescribeSourceServers",
      async () => (await describe())?.dataReplicationInfo?.lastSnapshotDateTime,
      30000,
    );
    assert.ok(Date.parse(String(snapped)) <= Date.now(), `lastSnapshotDateTime ${String(snapped)}`);

    // A change on the source reaches the replica.
    const fh = await open(disk, "r+");
    await fh.write(randomBytes(65536), 0, 65536, 3 * MiB);
    await fh.close();
    const want = await sha256File(disk);
    await until(
      "the change replicated",
      async () => ((await sha256File(await replicaImage())) === want ? true : undefined),
      60000,
    );
    mgn.destroy();
  } finally {
    for (const c of children.reverse()) {
      if (c.exitCode === null) {
        c.kill("SIGTERM");
        await new Promise((r) => {
          c.once("exit", r);
          setTimeout(r, 10000);
        });
      }
    }
    await scratch.cleanup();
  }
});
