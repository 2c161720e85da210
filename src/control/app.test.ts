import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestPlane, TestResponse } from "./testing.ts";
import { createTestPlane, registration } from "./testing.ts";
import type { SourceServer } from "../model/mgn-shapes.gen.ts";

function expectError(r: TestResponse, status: number, type: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.headers.get("x-amzn-ErrorType"), type);
  assert.equal(r.body.code, type);
  assert.equal(typeof r.body.message, "string");
}

const TEMPLATE = {
  stagingAreaSubnetId: "subnet-0123456789abcdef0",
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
};

async function withPlane(fn: (t: TestPlane) => Promise<void>): Promise<void> {
  const t = await createTestPlane({ agentNotSeenAfterSeconds: 60 });
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

async function registerServer(t: TestPlane, identity: string, extra: Record<string, unknown> = {}) {
  const install = await t.cp.accessKeys.create("install", "installer");
  const r = await t.call("/ferry/agent/register", registration(identity, extra), { creds: install });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as {
    sourceServerID: string;
    agentCredentials: { accessKeyId: string; secretAccessKey: string };
  };
}

test("UninitializedAccountException before InitializeService, then 204", async () => {
  await withPlane(async (t) => {
    expectError(await t.call("/DescribeSourceServers", {}), 400, "UninitializedAccountException");
    const init = await t.call("/InitializeService", {});
    assert.equal(init.status, 204);
    const d = await t.call("/DescribeSourceServers", {});
    assert.equal(d.status, 200);
    assert.deepEqual(d.body.items, []);
  });
});

test("templates: create (201, rct- id, arn), describe, update, delete; CUSTOM encryption refused", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const c = await t.call("/CreateReplicationConfigurationTemplate", { ...TEMPLATE, tags: { team: "a" } });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const id = c.body.replicationConfigurationTemplateID as string;
    assert.match(id, /^rct-[0-9a-zA-Z]{17}$/);
    assert.equal(c.body.arn, `arn:aws:mgn:us-east-1:000000000000:replication-configuration-template/${id}`);
    const u = await t.call("/UpdateReplicationConfigurationTemplate", {
      replicationConfigurationTemplateID: id,
      bandwidthThrottling: 100,
    });
    assert.equal(u.status, 200);
    assert.equal(u.body.bandwidthThrottling, 100);
    assert.equal(u.body.stagingAreaSubnetId, TEMPLATE.stagingAreaSubnetId);
    const d = await t.call("/DescribeReplicationConfigurationTemplates", {
      replicationConfigurationTemplateIDs: [id],
    });
    assert.equal((d.body.items as unknown[]).length, 1);
    const bad = await t.call("/CreateReplicationConfigurationTemplate", {
      ...TEMPLATE,
      ebsEncryption: "CUSTOM",
    });
    expectError(bad, 400, "ValidationException");
    assert.equal(bad.body.reason, "fieldValidationFailed");
    assert.equal(
      (await t.call("/DeleteReplicationConfigurationTemplate", { replicationConfigurationTemplateID: id }))
        .status,
      204,
    );
    const gone = await t.call("/DeleteReplicationConfigurationTemplate", {
      replicationConfigurationTemplateID: id,
    });
    expectError(gone, 404, "ResourceNotFoundException");
    assert.equal(gone.body.resourceId, id);
    assert.equal(gone.body.resourceType, "REPLICATION_CONFIGURATION_TEMPLATE");
  });
});

test("ValidationException carries reason and fieldList from MGN's constraints", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const r = await t.call("/CreateReplicationConfigurationTemplate", {
      ...TEMPLATE,
      bandwidthThrottling: 10001,
      stagingAreaSubnetId: "vpc-1",
    });
    expectError(r, 400, "ValidationException");
    assert.equal(r.body.reason, "fieldValidationFailed");
    const names = (r.body.fieldList as { name: string }[]).map((f) => f.name).sort();
    assert.deepEqual(names, ["bandwidthThrottling", "stagingAreaSubnetId"]);
    const id = await t.call("/GetReplicationConfiguration", { sourceServerID: "s-123" });
    expectError(id, 400, "ValidationException");
    const unknown = await t.call("/FlyToTheMoon", {});
    expectError(unknown, 400, "ValidationException");
    assert.equal(unknown.body.reason, "unknownOperation");
    const missing = await t.call("/GetReplicationConfiguration", { sourceServerID: "s-0123456789abcdef0" });
    expectError(missing, 404, "ResourceNotFoundException");
    assert.equal(missing.body.resourceType, "SOURCE_SERVER");
  });
});

test("a registered server: s- id, template settings, replication state from reports, READY_FOR_TEST after initial sync", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    await t.call("/CreateReplicationConfigurationTemplate", { ...TEMPLATE, bandwidthThrottling: 50 });
    const reg = await registerServer(t, "machine-0001");
    assert.match(reg.sourceServerID, /^s-[0-9a-zA-Z]{17}$/);
    const again = await registerServer(t, "machine-0001");
    assert.equal(again.sourceServerID, reg.sourceServerID, "same identity, same server");

    let s = ((await t.call("/DescribeSourceServers", {})).body.items as SourceServer[])[0]!;
    assert.equal(s.lifeCycle?.state, "NOT_READY");
    assert.equal(s.dataReplicationInfo?.dataReplicationState, "INITIATING");
    const steps = s.dataReplicationInfo?.dataReplicationInitiation?.steps as {
      name: string;
      status: string;
    }[];
    assert.equal(steps.find((x) => x.name === "AUTHENTICATE_WITH_SERVICE")?.status, "SUCCEEDED");
    const cfg = await t.call("/GetReplicationConfiguration", { sourceServerID: reg.sourceServerID });
    assert.equal(cfg.body.bandwidthThrottling, 50);
    assert.equal((cfg.body.replicatedDisks as unknown[]).length, 2);
    // No pool (stagingAreaSubnetId "", Ferry's default: any replicator) is accepted, and what
    // Get returns, Update takes back as it is.
    const noPool = await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: reg.sourceServerID,
      stagingAreaSubnetId: "",
    });
    assert.equal(noPool.status, 200, JSON.stringify(noPool.body));
    assert.equal(noPool.body.stagingAreaSubnetId, "");
    const back = await t.call("/UpdateReplicationConfiguration", noPool.body);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.deepEqual(back.body, noPool.body);
    await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: reg.sourceServerID,
      stagingAreaSubnetId: cfg.body.stagingAreaSubnetId,
    });
    expectError(
      await t.call("/UpdateReplicationConfiguration", {
        sourceServerID: reg.sourceServerID,
        stagingAreaSubnetId: "vpc-1",
      }),
      400,
      "ValidationException",
    );

    const agent = again.agentCredentials;
    const disk = (replicated: number, backlog = 0) => [
      {
        deviceName: "/dev/vda",
        totalStorageBytes: 1000,
        replicatedStorageBytes: replicated,
        rescannedStorageBytes: 0,
        backloggedStorageBytes: backlog,
      },
    ];
    const rep = await t.call(
      "/ferry/agent/report",
      {
        sourceServerID: reg.sourceServerID,
        dataReplicationState: "INITIAL_SYNC",
        replicatedDisks: disk(100),
      },
      { creds: agent },
    );
    assert.equal(rep.status, 200, JSON.stringify(rep.body));
    assert.equal(rep.body.desiredReplicationState, "RUNNING");
    t.clock.now += 10_000;
    await t.call(
      "/ferry/agent/report",
      {
        sourceServerID: reg.sourceServerID,
        dataReplicationState: "INITIAL_SYNC",
        replicatedDisks: disk(300),
      },
      { creds: agent },
    );
    s = ((await t.call("/DescribeSourceServers", {})).body.items as SourceServer[])[0]!;
    assert.equal(s.dataReplicationInfo?.dataReplicationState, "INITIAL_SYNC");
    // 200 bytes in 10 s → 20 B/s; 700 left → 35 s.
    assert.equal(Date.parse(s.dataReplicationInfo?.etaDateTime ?? "") - t.clock.now, 35_000);
    assert.ok(s.lifeCycle?.firstByteDateTime);
    assert.equal(s.lifeCycle?.state, "NOT_READY");

    t.clock.now += 1000;
    await t.call(
      "/ferry/agent/report",
      { sourceServerID: reg.sourceServerID, dataReplicationState: "CONTINUOUS", replicatedDisks: disk(1000) },
      { creds: agent },
    );
    s = ((await t.call("/DescribeSourceServers", {})).body.items as SourceServer[])[0]!;
    assert.equal(s.lifeCycle?.state, "READY_FOR_TEST");
    assert.equal(s.dataReplicationInfo?.lagDuration, "PT0S");

    // Silence beyond the bound: STALLED with AGENT_NOT_SEEN, lag counting.
    t.clock.now += 61_000;
    s = ((await t.call("/DescribeSourceServers", {})).body.items as SourceServer[])[0]!;
    assert.equal(s.dataReplicationInfo?.dataReplicationState, "STALLED");
    assert.equal(s.dataReplicationInfo?.dataReplicationError?.error, "AGENT_NOT_SEEN");
    assert.equal(s.dataReplicationInfo?.lagDuration, "PT1M1S");
    const retry = await t.call("/RetryDataReplication", { sourceServerID: reg.sourceServerID });
    assert.equal(retry.status, 200);
    assert.equal((retry.body as SourceServer).dataReplicationInfo?.dataReplicationState, "INITIATING");
    expectError(
      await t.call("/RetryDataReplication", { sourceServerID: reg.sourceServerID }),
      409,
      "ConflictException",
    );
  });
});

test("lifecycle: pause/resume/stop/start, disconnect, archive, delete — and refusals with ConflictException", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const { sourceServerID: id, agentCredentials } = await registerServer(t, "machine-0002");
    const op = (name: string, extra: Record<string, unknown> = {}) =>
      t.call(`/${name}`, { sourceServerID: id, ...extra });
    expectError(await op("ResumeReplication"), 409, "ConflictException");
    expectError(await op("MarkAsArchived"), 409, "ConflictException");
    expectError(await op("DeleteSourceServer"), 409, "ConflictException");
    const notLaunchable = await op("ChangeServerLifeCycleState", {
      lifeCycle: { state: "READY_FOR_CUTOVER" },
    });
    expectError(notLaunchable, 409, "ConflictException");
    assert.equal(notLaunchable.body.resourceId, id);
    assert.equal(notLaunchable.body.resourceType, "SOURCE_SERVER");

    const p = await op("PauseReplication");
    assert.equal((p.body as SourceServer).dataReplicationInfo?.dataReplicationState, "PAUSED");
    const rep = await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
      { creds: agentCredentials },
    );
    assert.equal(rep.body.desiredReplicationState, "PAUSED", "the agent learns it should pause");
    expectError(await op("PauseReplication"), 409, "ConflictException");
    assert.equal(
      ((await op("ResumeReplication")).body as SourceServer).dataReplicationInfo?.dataReplicationState,
      "CONTINUOUS",
    );
    const stopped = await op("StopReplication");
    assert.equal((stopped.body as SourceServer).lifeCycle?.state, "STOPPED");
    assert.equal((stopped.body as SourceServer).dataReplicationInfo?.dataReplicationState, "STOPPED");
    assert.equal((await op("StartReplication")).status, 200);

    const d = await op("DisconnectFromService");
    assert.equal((d.body as SourceServer).lifeCycle?.state, "DISCONNECTED");
    assert.equal((d.body as SourceServer).dataReplicationInfo?.dataReplicationState, "DISCONNECTED");
    expectError(await op("DisconnectFromService"), 409, "ConflictException");
    expectError(await op("StartReplication"), 409, "ConflictException");
    // The agent hears "uninstall" first; its acknowledgement revokes its credentials.
    const told = await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
      { creds: agentCredentials },
    );
    assert.equal(told.status, 200, JSON.stringify(told.body));
    assert.equal(told.body.uninstall, true);
    const ack = await t.call("/ferry/agent/uninstalled", { sourceServerID: id }, { creds: agentCredentials });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    const late = await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
      { creds: agentCredentials },
    );
    expectError(late, 403, "UnrecognizedClientException");

    const a = await op("MarkAsArchived");
    assert.equal(a.body.isArchived, true);
    const archived = await t.call("/DescribeSourceServers", { filters: { isArchived: true } });
    assert.equal((archived.body.items as unknown[]).length, 1);
    assert.equal(
      ((await t.call("/DescribeSourceServers", { filters: { isArchived: false } })).body.items as unknown[])
        .length,
      0,
    );
    assert.equal((await op("DeleteSourceServer")).status, 204);
    expectError(await op("GetLaunchConfiguration"), 404, "ResourceNotFoundException");
  });
});

test("launch operations refuse clearly (no fake job)", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const { sourceServerID: id } = await registerServer(t, "machine-0003");
    for (const [name, body] of [
      ["StartTest", { sourceServerIDs: [id] }],
      ["StartCutover", { sourceServerIDs: [id] }],
      ["TerminateTargetInstances", { sourceServerIDs: [id] }],
      ["FinalizeCutover", { sourceServerID: id }],
    ] as const) {
      const r = await t.call(`/${name}`, body);
      expectError(r, 400, "ValidationException");
      assert.match(r.body.message as string, /not available/);
    }
    assert.deepEqual((await t.call("/DescribeJobs", {})).body.items, []);
  });
});

test("pagination and filters of DescribeSourceServers", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await registerServer(t, `machine-page-${i}`)).sourceServerID);
    const seen: string[] = [];
    let token: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const r = await t.call("/DescribeSourceServers", {
        maxResults: 3,
        ...(token ? { nextToken: token } : {}),
      });
      seen.push(...(r.body.items as { sourceServerID: string }[]).map((s) => s.sourceServerID));
      token = r.body.nextToken as string | undefined;
      if (!token) break;
    }
    // Every server exactly once across the pages (ties in creation time order by id).
    assert.deepEqual([...seen].sort(), [...ids].sort());
    const two = await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [ids[1], ids[4]] } });
    assert.deepEqual(
      (two.body.items as { sourceServerID: string }[]).map((s) => s.sourceServerID).sort(),
      [ids[1], ids[4]].sort(),
    );
    const byState = await t.call("/DescribeSourceServers", {
      filters: { lifeCycleStates: ["READY_FOR_TEST"] },
    });
    assert.equal((byState.body.items as unknown[]).length, 0);
    expectError(await t.call("/DescribeSourceServers", { nextToken: "bogus" }), 400, "ValidationException");
  });
});

test("tags on /tags/{arn}: add, list, remove", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const { sourceServerID: id } = await registerServer(t, "machine-tags", { tags: { env: "prod" } });
    const arn = `arn:aws:mgn:us-east-1:000000000000:source-server/${id}`;
    const path = `/tags/${encodeURIComponent(arn)}`;
    assert.equal((await t.call(path, { tags: { owner: "ops", tier: "web" } })).status, 200);
    assert.deepEqual((await t.call(path, undefined, { method: "GET" })).body.tags, {
      env: "prod",
      owner: "ops",
      tier: "web",
    });
    assert.equal(
      (await t.call(path, undefined, { method: "DELETE", query: { tagKeys: ["env", "tier"] } })).status,
      200,
    );
    assert.deepEqual((await t.call(path, undefined, { method: "GET" })).body.tags, { owner: "ops" });
    const other = `/tags/${encodeURIComponent("arn:aws:mgn:us-east-1:000000000000:source-server/s-0123456789abcdef0")}`;
    expectError(await t.call(other, undefined, { method: "GET" }), 404, "ResourceNotFoundException");
  });
});

test("authentication and scopes: wrong signature, tampered body, expired, unknown key, install key on operator operation, agent key for another server", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    expectError(
      await t.call(
        "/DescribeSourceServers",
        {},
        { creds: { ...t.operator, secretAccessKey: "wrong-secret-wrong-secret-wrong-secret00" } },
      ),
      403,
      "InvalidSignatureException",
    );
    expectError(
      await t.call(
        "/DescribeSourceServers",
        { maxResults: 5 },
        { tamper: (i) => void (i.body = JSON.stringify({ maxResults: 6 })) },
      ),
      403,
      "InvalidSignatureException",
    );
    expectError(
      await t.call("/DescribeSourceServers", {}, { signingDate: new Date(t.clock.now - 6 * 60_000) }),
      403,
      "InvalidSignatureException",
    );
    assert.equal(
      (await t.call("/DescribeSourceServers", {}, { signingDate: new Date(t.clock.now - 4 * 60_000) }))
        .status,
      200,
    );
    expectError(
      await t.call("/DescribeSourceServers", {}, { region: "eu-west-1" }),
      403,
      "InvalidSignatureException",
    );
    expectError(
      await t.call(
        "/DescribeSourceServers",
        {},
        { creds: { accessKeyId: "FKOPNOSUCHKEY", secretAccessKey: "x" } },
      ),
      403,
      "UnrecognizedClientException",
    );
    const install = await t.cp.accessKeys.create("install", "installer");
    expectError(await t.call("/DescribeSourceServers", {}, { creds: install }), 403, "AccessDeniedException");
    const a = await registerServer(t, "machine-a-0001");
    const b = await registerServer(t, "machine-b-0001");
    expectError(
      await t.call(
        "/ferry/agent/report",
        { sourceServerID: b.sourceServerID, dataReplicationState: "CONTINUOUS" },
        { creds: a.agentCredentials },
      ),
      403,
      "AccessDeniedException",
    );
    expectError(
      await t.call("/DescribeSourceServers", {}, { creds: a.agentCredentials }),
      403,
      "AccessDeniedException",
    );
    expectError(
      await t.call("/ferry/agent/register", registration("machine-c-0001"), { creds: a.agentCredentials }),
      403,
      "AccessDeniedException",
    );
    const unsigned = await t.cp.app.request("https://mgn.ferry.test/DescribeSourceServers", {
      method: "POST",
      body: "{}",
    });
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get("x-amzn-ErrorType"), "MissingAuthenticationTokenException");
  });
});

test("healthz and metrics", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    await registerServer(t, "machine-metrics");
    const h = await t.cp.app.request("/healthz");
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: "ok", initialized: true });
    const m = await (await t.cp.app.request("/metrics")).text();
    assert.match(m, /ferry_api_requests_total\{operation="InitializeService",status="204"\} 1/);
    assert.match(m, /ferry_source_servers 1/);
  });
});

test("healthz answers 503 when the database is gone", async () => {
  const t = await createTestPlane();
  await t.cp.store.close();
  const h = await t.cp.app.request("/healthz");
  assert.equal(h.status, 503);
  assert.deepEqual(await h.json(), { status: "unavailable", reason: "database" });
  await t.close().catch(() => undefined); // the store is already closed
});

test("replicators: registration, assignment by pool and routing, dedicated replicators, failover when one goes silent", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const rk = await t.cp.accessKeys.create("replicator", "replicators");
    const fp = (n: number) =>
      Array.from({ length: 32 }, () => n.toString(16).padStart(2, "0").toUpperCase()).join(":");
    const reg = (name: string, extra: Record<string, unknown> = {}) =>
      t.call(
        "/ferry/replicator/register",
        { name, privateAddress: `10.0.0.${name.length}:1500`, certFingerprint: fp(name.length), ...extra },
        { creds: rk },
      );
    const install = await t.cp.accessKeys.create("install", "i");
    expectError(
      await t.call(
        "/ferry/replicator/register",
        { name: "x", privateAddress: "10.0.0.1:1500", certFingerprint: fp(1) },
        { creds: install },
      ),
      403,
      "AccessDeniedException",
    );

    // No replicator yet: no assignment; the agent keeps reporting.
    const first = await t.call("/ferry/agent/register", registration("machine-rep-a"), { creds: install });
    assert.equal(first.status, 200);
    assert.equal(first.body.replicator, undefined);
    const a = first.body as {
      sourceServerID: string;
      agentCredentials: { accessKeyId: string; secretAccessKey: string };
    };

    const r1 = await reg("r1", { publicAddress: "203.0.113.1:1500" });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    const r1id = r1.body.replicatorId as string;
    assert.match(r1id, /^i-[0-9a-f]{17}$/);
    assert.equal(
      (await reg("r1", { publicAddress: "203.0.113.1:1500" })).body.replicatorId,
      r1id,
      "same name, same replicator",
    );
    const r22 = (await reg("r22", { stagingAreaSubnetId: "subnet-0123456789abcdef0" })).body
      .replicatorId as string;

    const report = async (id: string, creds: { accessKeyId: string; secretAccessKey: string }) =>
      (
        await t.call(
          "/ferry/agent/report",
          { sourceServerID: id, dataReplicationState: "INITIAL_SYNC" },
          { creds },
        )
      ).body as { replicator?: { replicatorId: string; address: string; certFingerprint: string } };
    let got = await report(a.sourceServerID, a.agentCredentials);
    assert.deepEqual(
      got.replicator,
      { replicatorId: r1id, address: "10.0.0.2:1500", certFingerprint: fp(2) },
      "the pool-less replicator, private address",
    );
    await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: a.sourceServerID,
      dataPlaneRouting: "PUBLIC_IP",
    });
    got = await report(a.sourceServerID, a.agentCredentials);
    assert.equal(got.replicator?.address, "203.0.113.1:1500", "PUBLIC_IP routing picks the public address");
    await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: a.sourceServerID,
      dataPlaneRouting: "PRIVATE_IP",
      stagingAreaSubnetId: "subnet-0123456789abcdef0",
    });
    got = await report(a.sourceServerID, a.agentCredentials);
    assert.equal(
      got.replicator?.replicatorId,
      r1id,
      "the current replicator still fits (it serves every pool): no move",
    );

    // A dedicated replicator: server b may not share.
    const b = await registerServer(t, "machine-rep-b");
    await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: b.sourceServerID,
      useDedicatedReplicationServer: true,
      stagingAreaSubnetId: "subnet-0123456789abcdef0",
    });
    got = await report(b.sourceServerID, b.agentCredentials);
    assert.equal(got.replicator?.replicatorId, r22, "b gets the unused replicator of its pool");
    const d = (
      (await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [b.sourceServerID] } })).body
        .items as SourceServer[]
    )[0]!;
    assert.equal(d.dataReplicationInfo?.replicatorId, r22);

    // r1 goes silent past the bound while a keeps reporting: a moves to a live replicator of its pool.
    t.clock.now += 61_000;
    await reg("r22", { stagingAreaSubnetId: "subnet-0123456789abcdef0" });
    await t.call("/UpdateReplicationConfiguration", {
      sourceServerID: b.sourceServerID,
      useDedicatedReplicationServer: false,
    });
    got = await report(a.sourceServerID, a.agentCredentials);
    assert.equal(got.replicator?.replicatorId, r22, "failover to the live replicator");
  });
});

test("registration with a CSR returns a data-plane certificate bound to the server; replicators learn the CA", async () => {
  await withPlane(async (t) => {
    await t.call("/InitializeService");
    const { createCsr } = await import("../lib/pki.ts");
    const { X509Certificate, createPrivateKey } = await import("node:crypto");
    const { csrPem, keyPem } = await createCsr("anything");
    const install = await t.cp.accessKeys.create("install", "installer");
    const r = await t.call("/ferry/agent/register", registration("machine-csr-0001", { csr: csrPem }), {
      creds: install,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const body = r.body as {
      sourceServerID: string;
      dataPlaneCertificate: { certificatePem: string; caCertificatePem: string };
    };
    const cert = new X509Certificate(body.dataPlaneCertificate.certificatePem);
    const ca = new X509Certificate(body.dataPlaneCertificate.caCertificatePem);
    assert.match(cert.subject, new RegExp(`CN=source-server:${body.sourceServerID}`));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
    assert.equal(body.dataPlaneCertificate.caCertificatePem, t.cp.dataPlaneCaPem);

    // A CSR that is not one is refused before anything is stored.
    expectError(
      await t.call("/ferry/agent/register", registration("machine-csr-0002", { csr: "garbage" }), {
        creds: install,
      }),
      400,
      "ValidationException",
    );
    const list = await t.call("/DescribeSourceServers", {});
    assert.equal((list.body.items as unknown[]).length, 1);

    const rk = await t.cp.accessKeys.create("replicator", "r");
    const rr = await t.call(
      "/ferry/replicator/register",
      { name: "r1", privateAddress: "10.0.0.9:1500", certFingerprint: Array(32).fill("AB").join(":") },
      { creds: rk },
    );
    assert.equal(rr.body.clientCaPem, t.cp.dataPlaneCaPem);
  });
});
