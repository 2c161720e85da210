import { test } from "node:test";
import assert from "node:assert/strict";
import { createTestPlane } from "../testing.ts";

async function registered() {
  const t = await createTestPlane();
  await t.call("/InitializeService");
  const install = await t.cp.accessKeys.create("install", "test");
  const reg = await t.call(
    "/ferry/agent/register",
    {
      identity: "flows-test-0001",
      sourceProperties: { disks: [{ deviceName: "/dev/vda", bytes: 1048576 }] },
    },
    { creds: install },
  );
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const id = reg.body.sourceServerID as string;
  const agent = reg.body.agentCredentials as { accessKeyId: string; secretAccessKey: string };
  return { t, id, agent, install };
}

test("the agent's failed flow shows in DescribeSourceServers (MGN error, failed step, rawError) and clears when it works again", async () => {
  const { t, id, agent } = await registered();
  try {
    const failedFlow = {
      flow: "F7",
      ok: false,
      observed: "TCP 1500 to the replicator at 10.20.0.30: no answer (timed out: the packets are dropped)",
      cause: "the replicator's security group drops TCP 1500 from the source (no rule allows it)",
      fix: "allow TCP 1500 from the source in the replicator's security group",
      code: "SG_1500_MISSING",
      at: new Date(t.clock.now).toISOString(),
    };
    const rep = await t.call(
      "/ferry/agent/report",
      {
        sourceServerID: id,
        dataReplicationState: "INITIATING",
        initiationSteps: [{ name: "CONNECT_AGENT_TO_REPLICATION_SERVER", status: "FAILED" }],
        dataReplicationError: {
          error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
          rawError: "F7 … [SG_1500_MISSING]",
        },
        failedFlow,
      },
      { creds: agent },
    );
    assert.equal(rep.status, 200, JSON.stringify(rep.body));
    const stored = await t.cp.store.sourceServers.get(id);
    assert.deepEqual(stored?.agent.failedFlow, failedFlow);
    const d = await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [id] } });
    const info = (d.body.items as { dataReplicationInfo: Record<string, unknown> }[])[0]!.dataReplicationInfo;
    assert.deepEqual(info.dataReplicationError, {
      error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
      rawError: "F7 … [SG_1500_MISSING]",
    });
    assert.deepEqual((info.dataReplicationInitiation as { steps: unknown[] }).steps, [
      { name: "CONNECT_AGENT_TO_REPLICATION_SERVER", status: "FAILED" },
    ]);
    await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "INITIAL_SYNC" },
      { creds: agent },
    );
    assert.equal((await t.cp.store.sourceServers.get(id))?.agent.failedFlow, undefined);
  } finally {
    await t.close();
  }
});

test("a report refused for clock skew is recorded on the agent's server as FAILED_TO_AUTHENTICATE_WITH_SERVICE, F2", async () => {
  const { t, id, agent } = await registered();
  try {
    const refused = await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "INITIAL_SYNC" },
      { creds: agent, signingDate: new Date(t.clock.now - 3600_000) },
    );
    assert.equal(refused.status, 403);
    const a = (await t.cp.store.sourceServers.get(id))!.agent;
    assert.equal(a.error?.error, "FAILED_TO_AUTHENTICATE_WITH_SERVICE");
    assert.match(a.error?.rawError ?? "", /^F2 .*360[01] s ahead.*\[CLOCK_SKEW\]$/);
    assert.equal(a.failedFlow?.code, "CLOCK_SKEW");
    // Once the agent is not seen, AGENT_NOT_SEEN says why.
    t.clock.now += 10 * 60_000;
    const d = await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [id] } });
    const info = (
      d.body.items as { dataReplicationInfo: { dataReplicationError: { error: string; rawError: string } } }[]
    )[0]!.dataReplicationInfo;
    assert.equal(info.dataReplicationError.error, "AGENT_NOT_SEEN");
    assert.match(info.dataReplicationError.rawError, /clock skew/);
  } finally {
    await t.close();
  }
});

test("the assignment route: only the server's own agent key, the routing and both addresses, nothing recorded", async () => {
  const { t, id, agent, install } = await registered();
  try {
    const replicatorKey = await t.cp.accessKeys.create("replicator", "test");
    const joined = await t.call(
      "/ferry/replicator/register",
      {
        name: "r1",
        privateAddress: "10.20.0.30:1500",
        publicAddress: "198.51.100.30:1500",
        certFingerprint: Array.from({ length: 32 }, () => "AB").join(":"),
      },
      { creds: replicatorKey },
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const before = await t.cp.store.sourceServers.get(id);
    const r = await t.call("/ferry/agent/assignment", { sourceServerID: id }, { creds: agent });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.dataPlaneRouting, "PRIVATE_IP");
    assert.equal((r.body.replicator as { address: string }).address, "10.20.0.30:1500");
    assert.equal(r.body.publicAddress, "198.51.100.30:1500");
    assert.equal((await t.cp.store.sourceServers.get(id))?.agent.lastSeenAt, before?.agent.lastSeenAt);
    const denied = await t.call("/ferry/agent/assignment", { sourceServerID: id }, { creds: install });
    assert.equal(denied.status, 403);
    assert.match(String(denied.body.message), /only the agent credentials/);
  } finally {
    await t.close();
  }
});
