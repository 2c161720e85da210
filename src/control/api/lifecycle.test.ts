import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestPlane, TestResponse } from "../testing.ts";
import { createTestPlane, registration } from "../testing.ts";
import type { SourceServer } from "../../model/mgn-shapes.gen.ts";
import { revokeDueAgentKeys } from "./lifecycle.ts";

const GRACE_SECONDS = 120;

async function withPlane(fn: (t: TestPlane) => Promise<void>): Promise<void> {
  const t = await createTestPlane({ agentUninstallGraceSeconds: GRACE_SECONDS });
  try {
    await t.call("/InitializeService");
    await fn(t);
  } finally {
    await t.close();
  }
}

async function register(t: TestPlane, identity: string) {
  const install = await t.cp.accessKeys.create("install", "installer");
  const r = await t.call("/ferry/agent/register", registration(identity), { creds: install });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as {
    sourceServerID: string;
    agentCredentials: { accessKeyId: string; secretAccessKey: string };
  };
}

function report(t: TestPlane, agent: Awaited<ReturnType<typeof register>>): Promise<TestResponse> {
  return t.call(
    "/ferry/agent/report",
    { sourceServerID: agent.sourceServerID, dataReplicationState: "CONTINUOUS" },
    { creds: agent.agentCredentials },
  );
}

async function agentKeys(t: TestPlane, id: string): Promise<number> {
  return (await t.cp.store.accessKeys.list()).filter((k) => k.sourceServerID === id).length;
}

test("DisconnectFromService: the agent hears uninstall with its keys intact; they die at the grace period's end", async () => {
  await withPlane(async (t) => {
    const a = await register(t, "machine-grace-1");
    const d = await t.call("/DisconnectFromService", { sourceServerID: a.sourceServerID });
    assert.equal(d.status, 200);
    assert.equal((d.body as SourceServer).lifeCycle?.state, "DISCONNECTED");

    t.clock.now += (GRACE_SECONDS - 1) * 1000;
    const told = await report(t, a);
    assert.equal(told.status, 200, JSON.stringify(told.body));
    assert.equal(told.body.desiredReplicationState, "DISCONNECTED");
    assert.equal(told.body.uninstall, true);
    assert.equal(await agentKeys(t, a.sourceServerID), 1);

    // The agent never acknowledged: at the end of the grace period its next call is refused and the key is gone.
    t.clock.now += 1000;
    const late = await report(t, a);
    assert.equal(late.status, 403);
    assert.equal(late.headers.get("x-amzn-ErrorType"), "UnrecognizedClientException");
    assert.match(String(late.body.message), /revoked because source server s-\w+ is disconnected/);
    assert.equal(await agentKeys(t, a.sourceServerID), 0);
    // The server still shows MGN's disconnected state.
    const item = (
      (await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [a.sourceServerID] } })).body
        .items as SourceServer[]
    )[0]!;
    assert.equal(item.lifeCycle?.state, "DISCONNECTED");
    assert.equal(item.dataReplicationInfo?.dataReplicationState, "DISCONNECTED");
  });
});

test("the sweep revokes the keys of agents that never call again, and only those", async () => {
  await withPlane(async (t) => {
    const gone = await register(t, "machine-grace-2");
    const early = await register(t, "machine-grace-3");
    const live = await register(t, "machine-grace-4");
    await t.call("/DisconnectFromService", { sourceServerID: gone.sourceServerID });
    t.clock.now += GRACE_SECONDS * 1000;
    await t.call("/DisconnectFromService", { sourceServerID: early.sourceServerID });
    assert.deepEqual(await revokeDueAgentKeys(baseOf(t)), [gone.sourceServerID]);
    assert.equal(await agentKeys(t, gone.sourceServerID), 0);
    assert.equal(await agentKeys(t, early.sourceServerID), 1, "still within its grace period");
    assert.equal(await agentKeys(t, live.sourceServerID), 1);
    assert.equal((await report(t, live)).status, 200);
  });
});

test("the agent's acknowledgement revokes its keys at once; only a disconnected server's own agent may send it", async () => {
  await withPlane(async (t) => {
    const a = await register(t, "machine-ack-1");
    const b = await register(t, "machine-ack-2");
    const ack = (who: typeof a, id = who.sourceServerID) =>
      t.call("/ferry/agent/uninstalled", { sourceServerID: id }, { creds: who.agentCredentials });

    const connected = await ack(a);
    assert.equal(connected.status, 409, "not disconnected: the agent may not uninstall");
    assert.match(String(connected.body.message), /not disconnected/);
    await t.call("/DisconnectFromService", { sourceServerID: a.sourceServerID });
    const foreign = await ack(b, a.sourceServerID);
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("x-amzn-ErrorType"), "AccessDeniedException");
    const operator = await t.call("/ferry/agent/uninstalled", { sourceServerID: a.sourceServerID });
    assert.equal(operator.status, 403, "an operator key is not the agent");

    const ok = await ack(a);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { sourceServerID: a.sourceServerID, credentialsRevoked: true });
    assert.equal(await agentKeys(t, a.sourceServerID), 0);
    assert.equal((await report(t, a)).headers.get("x-amzn-ErrorType"), "UnrecognizedClientException");
    assert.equal((await report(t, b)).status, 200, "the other agent is untouched");

    // Reinstalling the disconnected machine: the same server, replicating again, with a working new key.
    const again = await register(t, "machine-ack-1");
    assert.equal(again.sourceServerID, a.sourceServerID);
    const fresh = await report(t, again);
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(fresh.body.uninstall, undefined);
    assert.equal(fresh.body.desiredReplicationState, "RUNNING");
    t.clock.now += GRACE_SECONDS * 2000;
    assert.equal((await report(t, again)).status, 200, "a reinstalled agent's key has no grace period");
  });
});

test("FinalizeCutover's agent is told to uninstall too (DeleteSourceServer removes any key left)", async () => {
  await withPlane(async (t) => {
    const a = await register(t, "machine-cut-1");
    // Stand in for a cut-over server (the launch path is covered in jobs.test.ts).
    await t.cp.store.sourceServers.update(a.sourceServerID, (r) => ({
      ...r,
      lifeCycle: { ...r.lifeCycle, state: "CUTOVER" },
      replication: { control: "DISCONNECTED" },
      agent: { ...r.agent, uninstallRequestedAt: t.clock.now },
    }));
    assert.equal((await report(t, a)).body.uninstall, true);
    assert.equal((await t.call("/DeleteSourceServer", { sourceServerID: a.sourceServerID })).status, 204);
    assert.equal(await agentKeys(t, a.sourceServerID), 0);
  });
});

function baseOf(t: TestPlane) {
  return {
    store: t.cp.store,
    accessKeys: t.cp.accessKeys,
    now: () => t.clock.now,
    region: t.cp.options.region,
    accountId: t.cp.options.accountId,
    stateOptions: { agentNotSeenAfterMs: 60_000 },
    reportIntervalSeconds: t.cp.options.reportIntervalSeconds,
    agentUninstallGraceSeconds: GRACE_SECONDS,
    dataPlaneCa: { certPem: "", keyPem: "", fingerprint: "" },
  };
}
