/**
 * The control plane driven by real MGN clients — the AWS CLI and
 * @aws-sdk/client-mgn — against `ferry server` over HTTPS, with state in
 * SQLite and in a real PostgreSQL: initialize, create and update a template,
 * see a server register and replicate (through the agent routes), pause and
 * resume, refusals with MGN's errors, disconnect, archive, delete.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.ts";
import type { Credentials } from "../../src/control/testing.ts";
import { registration } from "../../src/control/testing.ts";
import type { TestPostgres } from "../../src/control/store/testing-postgres.ts";
import {
  createDatabase,
  findPostgresBin,
  startTestPostgres,
} from "../../src/control/store/testing-postgres.ts";
import type { Driver, Endpoint } from "./control-plane-drivers.ts";
import { MgnCallError, agentCall, awsCliDriver, sdkDriver } from "./control-plane-drivers.ts";

interface RunningServer {
  endpoint: Endpoint;
  dataDir: string;
  databaseUrl: string | undefined;
  stop(): Promise<void>;
}

function capture() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c: Buffer) => (text += c.toString("utf8")));
  return { stream, text: () => text };
}

/** `ferry server --json` through the CLI's main(), until the returned stop(). */
async function startFerryServer(dataDir: string, databaseUrl?: string): Promise<RunningServer> {
  const out = capture();
  const err = capture();
  const controller = new AbortController();
  const args = [
    "server",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dataDir,
    "--region",
    "eu-central-1",
    "--json",
  ];
  if (databaseUrl) args.push("--database-url", databaseUrl);
  const done = main(args, {
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
  const info = JSON.parse(out.text().split("\n")[0]!) as {
    endpoint: string;
    caFile: string;
    region: string;
    caFingerprint: string;
  };
  assert.match(info.caFingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  return {
    endpoint: { url: info.endpoint, caFile: info.caFile, region: info.region },
    dataDir,
    databaseUrl,
    async stop() {
      controller.abort();
      assert.equal(await done, 0, err.text());
    },
  };
}

async function cli(args: string[]): Promise<string> {
  const out = capture();
  const err = capture();
  const code = await main(args, {
    stdout: out.stream,
    stderr: err.stream,
    isTTY: false,
    env: {},
    signal: new AbortController().signal,
  });
  assert.equal(code, 0, err.text());
  return out.text();
}

async function createKey(s: RunningServer, scope: "operator" | "install"): Promise<Credentials> {
  const args = [
    "access-key",
    "create",
    "--scope",
    scope,
    "--json",
    "--data-dir",
    s.dataDir,
    "--region",
    "eu-central-1",
  ];
  if (s.databaseUrl) args.push("--database-url", s.databaseUrl);
  return JSON.parse(await cli(args)) as Credentials;
}

async function refused(p: Promise<unknown>, type: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MgnCallError, String(e));
    assert.equal(e.type, type, e.message);
    return true;
  });
}

type Items = { items: Record<string, any>[] }; // eslint-disable-line @typescript-eslint/no-explicit-any -- MGN JSON walked freely in assertions

async function migrationFlow(s: RunningServer, client: Driver, installDriver: Driver): Promise<void> {
  const install = await createKey(s, "install");
  await refused(client.call("DescribeSourceServers", {}), "UninitializedAccountException");
  await client.call("InitializeService");

  const tpl = await client.call("CreateReplicationConfigurationTemplate", {
    stagingAreaSubnetId: "subnet-0a1b2c3d4e5f60718",
    associateDefaultSecurityGroup: true,
    replicationServersSecurityGroupsIDs: [],
    replicationServerInstanceType: "t3.small",
    useDedicatedReplicationServer: false,
    defaultLargeStagingDiskType: "GP3",
    ebsEncryption: "DEFAULT",
    bandwidthThrottling: 0,
    dataPlaneRouting: "PRIVATE_IP",
    createPublicIP: false,
    stagingAreaTags: {},
    tags: { project: "ferry-e2e" },
  });
  const tplId = tpl.replicationConfigurationTemplateID as string;
  assert.match(tplId, /^rct-[0-9a-zA-Z]{17}$/);
  const upd = await client.call("UpdateReplicationConfigurationTemplate", {
    replicationConfigurationTemplateID: tplId,
    bandwidthThrottling: 100,
  });
  assert.equal(upd.bandwidthThrottling, 100);
  const tpls = (await client.call("DescribeReplicationConfigurationTemplates", {})) as Items;
  assert.deepEqual(
    tpls.items.map((t) => t.replicationConfigurationTemplateID),
    [tplId],
  );
  await refused(
    client.call("CreateReplicationConfigurationTemplate", {
      ...tpl,
      replicationConfigurationTemplateID: undefined,
      arn: undefined,
      ebsEncryption: "CUSTOM",
    }),
    "ValidationException",
  );

  // The agent registers with the install key, then reports with its own credentials.
  const reg = await agentCall(
    s.endpoint,
    install,
    "/ferry/agent/register",
    registration(`e2e-${client.name}-machine`),
  );
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const id = reg.body.sourceServerID as string;
  const agentCreds = reg.body.agentCredentials as Credentials;
  const report = (body: Record<string, unknown>) =>
    agentCall(s.endpoint, agentCreds, "/ferry/agent/report", { sourceServerID: id, ...body });

  let servers = (await client.call("DescribeSourceServers", {})) as Items;
  assert.equal(servers.items.length, 1);
  assert.equal(servers.items[0]!.sourceServerID, id);
  assert.equal(servers.items[0]!.lifeCycle.state, "NOT_READY");
  assert.equal(servers.items[0]!.dataReplicationInfo.dataReplicationState, "INITIATING");

  const disk = (replicated: number) => [
    {
      deviceName: "/dev/vda",
      totalStorageBytes: 4096,
      replicatedStorageBytes: replicated,
      rescannedStorageBytes: 0,
      backloggedStorageBytes: 0,
    },
  ];
  assert.equal(
    (await report({ dataReplicationState: "INITIAL_SYNC", replicatedDisks: disk(1024) })).status,
    200,
  );
  servers = (await client.call("DescribeSourceServers", { filters: { sourceServerIDs: [id] } })) as Items;
  assert.equal(servers.items[0]!.dataReplicationInfo.dataReplicationState, "INITIAL_SYNC");
  assert.equal(servers.items[0]!.dataReplicationInfo.replicatedDisks[0].replicatedStorageBytes, 1024);
  await report({ dataReplicationState: "CONTINUOUS", replicatedDisks: disk(4096) });
  servers = (await client.call("DescribeSourceServers", {
    filters: { lifeCycleStates: ["READY_FOR_TEST"] },
  })) as Items;
  assert.equal(servers.items.length, 1, "ready for test after the initial sync");
  assert.equal(servers.items[0]!.dataReplicationInfo.dataReplicationState, "CONTINUOUS");
  assert.equal(servers.items[0]!.dataReplicationInfo.lagDuration, "PT0S");

  const cfg = await client.call("GetReplicationConfiguration", { sourceServerID: id });
  assert.equal(cfg.bandwidthThrottling, 100, "the server took the template's settings");
  await client.call("UpdateReplicationConfiguration", { sourceServerID: id, bandwidthThrottling: 20 });
  const live = await report({ dataReplicationState: "CONTINUOUS", replicatedDisks: disk(4096) });
  assert.equal(
    (live.body.replicationConfiguration as { bandwidthThrottling: number }).bandwidthThrottling,
    20,
    "the agent sees the change live",
  );
  const launch = await client.call("UpdateLaunchConfiguration", {
    sourceServerID: id,
    launchDisposition: "STOPPED",
  });
  assert.equal(launch.launchDisposition, "STOPPED");

  const paused = await client.call("PauseReplication", { sourceServerID: id });
  assert.equal(
    (paused.dataReplicationInfo as { dataReplicationState: string }).dataReplicationState,
    "PAUSED",
  );
  assert.equal((await report({ dataReplicationState: "CONTINUOUS" })).body.desiredReplicationState, "PAUSED");
  await refused(client.call("PauseReplication", { sourceServerID: id }), "ConflictException");
  const resumed = await client.call("ResumeReplication", { sourceServerID: id });
  assert.equal(
    (resumed.dataReplicationInfo as { dataReplicationState: string }).dataReplicationState,
    "CONTINUOUS",
  );

  await refused(client.call("MarkAsArchived", { sourceServerID: id }), "ConflictException");
  await refused(client.call("StartTest", { sourceServerIDs: [id] }), "ValidationException");
  await refused(
    client.call("GetLaunchConfiguration", { sourceServerID: "s-0123456789abcdef0" }),
    "ResourceNotFoundException",
  );
  await refused(installDriver.call("DescribeSourceServers", {}), "AccessDeniedException");

  const arn = servers.items[0]!.arn as string;
  await client.call("TagResource", { resourceArn: arn, tags: { wave: "1" } });
  assert.deepEqual((await client.call("ListTagsForResource", { resourceArn: arn })).tags, { wave: "1" });
  await client.call("UntagResource", { resourceArn: arn, tagKeys: ["wave"] });
  assert.deepEqual((await client.call("ListTagsForResource", { resourceArn: arn })).tags ?? {}, {});

  const disconnected = await client.call("DisconnectFromService", { sourceServerID: id });
  assert.equal((disconnected.lifeCycle as { state: string }).state, "DISCONNECTED");
  const archived = await client.call("MarkAsArchived", { sourceServerID: id });
  assert.equal(archived.isArchived, true);
  assert.equal(
    ((await client.call("DescribeSourceServers", { filters: { isArchived: true } })) as Items).items.length,
    1,
  );
  await client.call("DeleteSourceServer", { sourceServerID: id });
  assert.deepEqual(((await client.call("DescribeSourceServers", {})) as Items).items, []);
  await client.call("DeleteReplicationConfigurationTemplate", { replicationConfigurationTemplateID: tplId });
}

function flows(backend: string, databaseUrl: () => Promise<string | undefined>) {
  for (const kind of ["aws-cli", "sdk"] as const) {
    test(`${kind} drives a migration flow (${backend})`, { timeout: 300_000 }, async () => {
      const dir = mkdtempSync(join(tmpdir(), "ferry-e2e-cp-"));
      const server = await startFerryServer(dir, await databaseUrl());
      const drivers: (Driver & { destroy?: () => void })[] = [];
      try {
        const operator = await createKey(server, "operator");
        const install = await createKey(server, "install");
        const make = (c: Credentials) => {
          const d = kind === "aws-cli" ? awsCliDriver(server.endpoint, c) : sdkDriver(server.endpoint, c);
          drivers.push(d);
          return d;
        };
        await migrationFlow(server, make(operator), make(install));
      } finally {
        for (const d of drivers) d.destroy?.();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

describe("control plane with SQLite", () => flows("sqlite", async () => undefined));

let dbCounter = 0;
describe(
  "control plane with PostgreSQL",
  { skip: findPostgresBin() ? false : "PostgreSQL not installed (scripts/install-debs.sh installs it)" },
  () => {
    let pg: TestPostgres | undefined;
    before(async () => {
      pg = await startTestPostgres();
    });
    after(async () => {
      await pg?.stop();
    });
    flows("postgresql", () => createDatabase(pg!.url, `e2e_${process.pid}_${++dbCounter}`));
  },
);
