/**
 * Taking an agent out of service, end to end: a real control plane and
 * replicator (`ferry up`'s), `ferry agent install` writing its systemd unit
 * into a temp tree (FERRY_SYSTEM_ROOT: no systemd runs here), and the real
 * `bin/ferry agent run` process replicating. DisconnectFromService → the
 * agent hears "uninstall" on its next report, stops replicating, removes its
 * unit and state, acknowledges → its key is refused → DescribeSourceServers
 * shows MGN's DISCONNECTED → a reinstall is the same server with a new key.
 * A second machine, cut over and finalized, uninstalls the same way. And
 * `ferry-installer-init --uninstall` removing the unit from the tree.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { Agent } from "node:https";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  DescribeSourceServersCommand,
  DescribeJobsCommand,
  DisconnectFromServiceCommand,
  FinalizeCutoverCommand,
  InitializeServiceCommand,
  StartCutoverCommand,
  MgnClient,
} from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { main } from "../../src/cli/main.ts";
import { startEmbedded, type Embedded } from "../../src/cli/embedded.ts";
import { z } from "zod";
import { createControlClient } from "../../src/agent/control-client.ts";
import { createSignedClient } from "../../src/lib/signed-client.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { createScratch, type Scratch } from "../support/loop.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
const REGION = "us-east-1";
const UNIT = "ferry-agent.service";

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

interface Source {
  scratch: Scratch;
  up: Embedded;
  mgn: MgnClient;
  disk: string;
  sysRoot: string;
  env: Record<string, string>;
  /** `ferry agent install` as the installer runs it; `machine` picks another machine id and disk. */
  install(
    installDir: string,
    stateDir: string,
    machine?: { machineIdFile: string; disk: string },
  ): Promise<{ sourceServerID: string; unitFile: string; service: string }>;
}

/** The control plane, a source disk, a fake /sys with no disk of this machine, and a temp tree for systemd. */
async function createSource(scratch: Scratch): Promise<Source> {
  const up = await startEmbedded({
    dataDir: join(scratch.dir, "ferry"),
    listen: { host: "127.0.0.1", port: 0 },
    replicatorListen: { host: "127.0.0.1", port: 0 },
    region: REGION,
    reportIntervalSeconds: 1,
    log: silentLogger,
  });
  scratch.defer(() => up.close());
  const mgn = new MgnClient({
    endpoint: up.endpoint,
    region: REGION,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: await readFile(up.caFile) }) }),
  });
  scratch.defer(async () => mgn.destroy());
  await mgn.send(new InitializeServiceCommand({}));

  const disk = join(scratch.dir, "source-disk.img");
  await writeFile(disk, Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20), randomBytes(3 << 20)]));
  const fakeSys = join(scratch.dir, "fake-sys");
  await mkdir(join(fakeSys, "sys", "block"), { recursive: true });
  await mkdir(join(fakeSys, "proc", "self"), { recursive: true });
  await writeFile(join(fakeSys, "proc", "self", "mountinfo"), "");
  await writeFile(join(scratch.dir, "machine-id"), "0123456789abcdef0123456789abcdef\n");
  const sysRoot = join(scratch.dir, "sysroot");
  await mkdir(sysRoot);
  const env = {
    PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: scratch.dir,
    FERRY_SYS_ROOT: fakeSys,
    FERRY_MACHINE_ID_FILE: join(scratch.dir, "machine-id"),
    FERRY_SYSTEM_ROOT: sysRoot,
  };
  return {
    scratch,
    up,
    mgn,
    disk,
    sysRoot,
    env,
    async install(installDir, stateDir, machine) {
      const key = await up.controlPlane.accessKeys.create("install", "lifecycle test");
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = "";
      let err = "";
      stdout.on("data", (d: Buffer) => (out += d.toString()));
      stderr.on("data", (d: Buffer) => (err += d.toString()));
      const code = await main(
        [
          "agent",
          "install",
          "--endpoint",
          up.endpoint,
          "--region",
          REGION,
          "--ca-file",
          up.caFile,
          "--aws-access-key-id",
          key.accessKeyId,
          "--aws-secret-access-key",
          key.secretAccessKey,
          "--no-prompt",
          "--devices",
          machine?.disk ?? disk,
          "--install-dir",
          installDir,
          "--state-dir",
          stateDir,
          "--json",
        ],
        {
          stdout,
          stderr,
          isTTY: false,
          env: machine ? { ...env, FERRY_MACHINE_ID_FILE: machine.machineIdFile } : env,
          signal: new AbortController().signal,
        },
      );
      assert.equal(code, 0, err);
      return JSON.parse(out) as { sourceServerID: string; unitFile: string; service: string };
    },
  };
}

async function describe(s: Source, id: string) {
  const out = await s.mgn.send(new DescribeSourceServersCommand({ filters: { sourceServerIDs: [id] } }));
  return out.items?.[0];
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => resolve(clearTimeout(t)));
  });
}

interface RunningAgent {
  child: ChildProcess;
  exited: Promise<number | null>;
  log(): string;
}

/** The real `bin/ferry agent run`, as the unit would start it. */
function startAgent(s: Source, stateDir: string): RunningAgent {
  const agent = spawn(
    join(ROOT, "bin", "ferry"),
    ["agent", "run", "--state-dir", stateDir, "--tracker", "scan"],
    {
      env: s.env,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  s.scratch.defer(() => stop(agent));
  let log = "";
  agent.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  return {
    child: agent,
    exited: new Promise((resolve) => agent.once("exit", (code) => resolve(code))),
    log: () => log,
  };
}

async function waitForServer(
  s: Source,
  id: string,
  what: string,
  ok: (item: NonNullable<Awaited<ReturnType<typeof describe>>>) => boolean,
  agent: RunningAgent,
): Promise<void> {
  for (const deadline = Date.now() + 120_000; ;) {
    const item = await describe(s, id);
    if (item && ok(item)) return;
    if (Date.now() > deadline)
      assert.fail(`not ${what}: ${JSON.stringify(item)}\n${agent.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The agent heard "uninstall": it exits cleanly, its unit and state are gone, and its key is refused. */
async function expectUninstalled(
  s: Source,
  id: string,
  agent: RunningAgent,
  stateDir: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
): Promise<void> {
  // The agent can only hear "uninstall" in a report answer: its key must outlive the disconnect.
  const code = await Promise.race([
    agent.exited,
    new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000).unref()),
  ]);
  const log = agent.log();
  assert.equal(code, 0, `the agent did not exit cleanly:\n${log.slice(-3000)}`);
  assert.match(log, /uninstalling the agent/);
  assert.match(log, /systemd is not running: removed the unit file/);
  assert.match(log, /revoked this agent's credentials/);
  assert.equal(await exists(stateDir), false, "the state directory (credentials, keys) is gone");
  assert.equal(await exists(join(s.sysRoot, "etc/systemd/system", UNIT)), false, "the unit file is gone");
  assert.equal(
    await exists(join(s.sysRoot, "etc/systemd/system/multi-user.target.wants", UNIT)),
    false,
    "the unit is no longer enabled",
  );
  // A later signed call with the agent's key is refused.
  const client = createControlClient({
    endpoint: s.up.endpoint,
    region: REGION,
    credentials,
    caPem: await readFile(s.up.caFile, "utf8"),
  });
  try {
    await assert.rejects(
      client.report({ sourceServerID: id, dataReplicationState: "CONTINUOUS" }),
      /UnrecognizedClientException/,
    );
  } finally {
    client.close();
  }
}

type AgentJson = {
  agentCredentials: { accessKeyId: string; secretAccessKey: string };
  service?: { unitFile: string };
};

test(
  "DisconnectFromService and FinalizeCutover: the agent hears uninstall, stops, removes its unit and state, then its key is revoked; a reinstall is the same server",
  { timeout: 240_000 },
  async () => {
    const scratch = await createScratch("ferry-lifecycle-");
    try {
      const s = await createSource(scratch);
      const stateDir = join(scratch.dir, "agent-state");
      const installed = await s.install(ROOT, stateDir);
      const unitFile = join(s.sysRoot, "etc/systemd/system", UNIT);
      const wants = join(s.sysRoot, "etc/systemd/system/multi-user.target.wants", UNIT);
      assert.equal(installed.service, "systemd-offline");
      assert.equal(installed.unitFile, unitFile);
      assert.match(await readFile(unitFile, "utf8"), new RegExp(`--state-dir ${stateDir}$`, "m"));
      assert.ok(await exists(wants), "the unit is enabled in the tree");
      const id = installed.sourceServerID;
      const config = JSON.parse(await readFile(join(stateDir, "agent.json"), "utf8")) as AgentJson;
      assert.equal(config.service?.unitFile, unitFile, "the agent knows which unit is its own");

      const agent = startAgent(s, stateDir);
      await waitForServer(
        s,
        id,
        "CONTINUOUS",
        (i) => i.dataReplicationInfo?.dataReplicationState === "CONTINUOUS",
        agent,
      );
      const disconnected = await s.mgn.send(new DisconnectFromServiceCommand({ sourceServerID: id }));
      assert.equal(disconnected.lifeCycle?.state, "DISCONNECTED");
      await expectUninstalled(s, id, agent, stateDir, config.agentCredentials);
      const item = await describe(s, id);
      assert.equal(item?.lifeCycle?.state, "DISCONNECTED");
      assert.equal(item?.dataReplicationInfo?.dataReplicationState, "DISCONNECTED");
      assert.equal(item?.isArchived, false);

      // Installing again: the same server, its unit back, a new key that works, and it replicates
      // again at once (registering lifts the release's hold: docs/staging-store.md).
      const again = await s.install(ROOT, stateDir);
      assert.equal(again.sourceServerID, id);
      assert.ok(await exists(unitFile));
      assert.ok(await exists(wants));
      const renewed = JSON.parse(await readFile(join(stateDir, "agent.json"), "utf8")) as AgentJson;
      const client = createControlClient({
        endpoint: s.up.endpoint,
        region: REGION,
        credentials: renewed.agentCredentials,
        caPem: await readFile(s.up.caFile, "utf8"),
      });
      try {
        const answer = await client.report({ sourceServerID: id, dataReplicationState: "INITIATING" });
        assert.equal(answer.desiredReplicationState, "RUNNING");
        assert.equal(answer.uninstall, undefined);
      } finally {
        client.close();
      }
      assert.equal((await describe(s, id))?.lifeCycle?.state, "NOT_READY");
      const reinstalled = startAgent(s, stateDir);
      await waitForServer(
        s,
        id,
        "CONTINUOUS again after the reinstall",
        (i) => i.dataReplicationInfo?.dataReplicationState === "CONTINUOUS",
        reinstalled,
      );
      assert.doesNotMatch(reinstalled.log(), /VOLUME_RELEASED|taken out of replication/);
      await stop(reinstalled.child);
      // Out of the way for the second machine's install into the same tree.
      await rm(stateDir, { recursive: true });
      await rm(unitFile);

      // A second machine, cut over and finalized: its agent uninstalls itself the same way.
      const disk2 = join(scratch.dir, "source-disk-2.img");
      await writeFile(disk2, randomBytes(6 << 20));
      const machineIdFile = join(scratch.dir, "machine-id-2");
      await writeFile(machineIdFile, "fedcba9876543210fedcba9876543210\n");
      const stateDir2 = join(scratch.dir, "agent-state-2");
      const second = await s.install(ROOT, stateDir2, { machineIdFile, disk: disk2 });
      const id2 = second.sourceServerID;
      assert.notEqual(id2, id);
      const fresh = JSON.parse(await readFile(join(stateDir2, "agent.json"), "utf8")) as AgentJson;
      const agent2 = startAgent(s, stateDir2);
      await waitForServer(
        s,
        id2,
        "READY_FOR_TEST and CONTINUOUS",
        (i) =>
          i.lifeCycle?.state === "READY_FOR_TEST" &&
          i.dataReplicationInfo?.dataReplicationState === "CONTINUOUS",
        agent2,
      );

      const operator = createSignedClient({
        endpoint: s.up.endpoint,
        region: REGION,
        credentials: { accessKeyId: s.up.accessKeyId, secretAccessKey: s.up.secretAccessKey },
        caPem: await readFile(s.up.caFile, "utf8"),
      });
      try {
        // Ferry's launch setting (MGN clients drop it): an idle scan-tracked disk's fresh point is minutes away.
        await operator.call(
          "/UpdateLaunchConfiguration",
          { sourceServerID: id2, ferry: { snapshotTimeoutSeconds: 1 } },
          z.unknown(),
        );
      } finally {
        operator.close();
      }
      const cut = await s.mgn.send(new StartCutoverCommand({ sourceServerIDs: [id2] }));
      const jobID = cut.job!.jobID!;
      for (const deadline = Date.now() + 90_000; ;) {
        const job = (await s.mgn.send(new DescribeJobsCommand({ filters: { jobIDs: [jobID] } }))).items?.[0];
        if (job?.status === "COMPLETED") {
          assert.equal(job.participatingServers?.[0]?.launchStatus, "LAUNCHED");
          break;
        }
        if (Date.now() > deadline) assert.fail(`the cutover job did not complete: ${JSON.stringify(job)}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      const finalized = await s.mgn.send(new FinalizeCutoverCommand({ sourceServerID: id2 }));
      assert.equal(finalized.lifeCycle?.state, "CUTOVER");
      await expectUninstalled(s, id2, agent2, stateDir2, fresh.agentCredentials);
      const cutover = await describe(s, id2);
      assert.equal(cutover?.lifeCycle?.state, "CUTOVER");
      assert.equal(cutover?.dataReplicationInfo?.dataReplicationState, "DISCONNECTED");
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "ferry-installer-init --uninstall removes the unit from the tree it was installed into, and the install; a reinstall works",
  { timeout: 120_000 },
  async () => {
    const scratch = await createScratch("ferry-lifecycle-installer-");
    try {
      const s = await createSource(scratch);
      // An unpacked package as the installer leaves it (what --uninstall checks before removing anything).
      const installDir = join(scratch.dir, "opt-ferry-agent");
      await mkdir(join(installDir, "bin"), { recursive: true });
      await writeFile(join(installDir, "bin", "ferry"), "#!/bin/sh\n", { mode: 0o755 });
      await writeFile(join(installDir, "package.json"), "{}\n");
      const stateDir = join(installDir, "state");
      const first = await s.install(installDir, stateDir);
      const unitFile = join(s.sysRoot, "etc/systemd/system", UNIT);
      const wants = join(s.sysRoot, "etc/systemd/system/multi-user.target.wants", UNIT);
      assert.equal(first.unitFile, unitFile);
      assert.ok(await exists(wants));

      const script = join(ROOT, "installer", "ferry-installer-init");
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn("dash", [script, "--uninstall", "--install-dir", installDir], {
          env: s.env,
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        c.on("close", (code) => resolve({ code, stderr }));
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /systemd is not running: removed the unit file .*ferry-agent\.service/);
      assert.equal(await exists(unitFile), false);
      assert.equal(await exists(wants), false);
      assert.equal(await exists(stateDir), false);
      assert.equal(await exists(installDir), false);

      await mkdir(join(installDir, "bin"), { recursive: true });
      const again = await s.install(installDir, stateDir);
      assert.equal(again.sourceServerID, first.sourceServerID, "the same machine is the same server");
      assert.ok(await exists(unitFile));
    } finally {
      await scratch.cleanup();
    }
  },
);

test(
  "an agent that misses the uninstall (frozen through the grace period) finds its key revoked and stops replicating",
  { timeout: 120_000 },
  async () => {
    const scratch = await createScratch("ferry-lifecycle-grace-");
    const saved = process.env.FERRY_AGENT_UNINSTALL_GRACE_SECONDS;
    process.env.FERRY_AGENT_UNINSTALL_GRACE_SECONDS = "2";
    let s: Source;
    try {
      s = await createSource(scratch);
    } finally {
      if (saved === undefined) delete process.env.FERRY_AGENT_UNINSTALL_GRACE_SECONDS;
      else process.env.FERRY_AGENT_UNINSTALL_GRACE_SECONDS = saved;
    }
    try {
      const stateDir = join(scratch.dir, "agent-state");
      const { sourceServerID: id } = await s.install(ROOT, stateDir);
      const agent = startAgent(s, stateDir);
      await waitForServer(
        s,
        id,
        "CONTINUOUS",
        (i) => i.dataReplicationInfo?.dataReplicationState === "CONTINUOUS",
        agent,
      );
      const child = agent.child;
      // bin/ferry execs node: the pid is the agent's.
      process.kill(child.pid!, "SIGSTOP");
      try {
        await s.mgn.send(new DisconnectFromServiceCommand({ sourceServerID: id }));
        const keys = async () =>
          (await s.up.controlPlane.store.accessKeys.list()).filter((k) => k.sourceServerID === id).length;
        // The sweep (every second with a 2 s grace) revokes the key of an agent that does not call.
        for (let i = 0; i < 100 && (await keys()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
        assert.equal(await keys(), 0, "revoked at the end of the grace period");
      } finally {
        process.kill(child.pid!, "SIGCONT");
      }
      for (let i = 0; i < 100 && !/refused this agent's key: replication stopped/.test(agent.log()); i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.match(agent.log(), /refused this agent's key: replication stopped/);
      assert.doesNotMatch(agent.log(), /uninstalling the agent/);
      assert.equal(child.exitCode, null, "it keeps running, doing nothing, until it is removed");
      assert.ok(await exists(stateDir), "nothing told it to remove its state");
      const item = await describe(s, id);
      assert.equal(item?.lifeCycle?.state, "DISCONNECTED");
    } finally {
      await scratch.cleanup();
    }
  },
);
