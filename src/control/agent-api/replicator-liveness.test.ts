/**
 * Replicators have their own liveness threshold (≥ 3 heartbeats), not the
 * agents' --agent-not-seen-after: a short agent threshold must not drop a
 * replicator between two heartbeats.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTestPlane } from "../testing.ts";

test("a replicator stays assigned between heartbeats under a short agent threshold; gone after its own", async () => {
  const t = await createTestPlane({ agentNotSeenAfterSeconds: 5 });
  try {
    assert.equal(t.cp.options.reportIntervalSeconds, 10);
    assert.equal(t.cp.options.replicatorNotSeenAfterSeconds, 60);
    await t.call("/InitializeService");
    const install = await t.cp.accessKeys.create("install", "test");
    const reg = await t.call(
      "/ferry/agent/register",
      { identity: "liveness-test-0001", sourceProperties: { disks: [{ deviceName: "/dev/vda", bytes: 1 }] } },
      { creds: install },
    );
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const id = reg.body.sourceServerID as string;
    const agent = reg.body.agentCredentials as { accessKeyId: string; secretAccessKey: string };
    const replicatorKey = await t.cp.accessKeys.create("replicator", "test");
    const heartbeat = async () => {
      const r = await t.call(
        "/ferry/replicator/register",
        {
          name: "r1",
          privateAddress: "10.20.0.30:1500",
          certFingerprint: Array.from({ length: 32 }, () => "AB").join(":"),
        },
        { creds: replicatorKey },
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.heartbeatIntervalSeconds, 10);
    };
    const assigned = async () => {
      const r = await t.call("/ferry/agent/assignment", { sourceServerID: id }, { creds: agent });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.replicator as { address?: string } | undefined)?.address;
    };
    await heartbeat();
    assert.equal(await assigned(), "10.20.0.30:1500");
    // One heartbeat late and then some: beyond the agents' 5 s, well within the replicators' 60 s.
    t.clock.now += 12_000;
    assert.equal(await assigned(), "10.20.0.30:1500");
    t.clock.now += 47_000; // 59 s since the heartbeat
    assert.equal(await assigned(), "10.20.0.30:1500");
    t.clock.now += 2_000; // 61 s: gone
    assert.equal(await assigned(), undefined);
    await heartbeat();
    assert.equal(await assigned(), "10.20.0.30:1500");
  } finally {
    await t.close();
  }
});

test("the replicators' threshold: at least 3 heartbeat intervals; the default follows the interval", async () => {
  await assert.rejects(
    createTestPlane({ replicatorNotSeenAfterSeconds: 25 }),
    (err: Error & { code?: string }) =>
      err.code === "BAD_REPLICATOR_NOT_SEEN" && /at least 3 heartbeat intervals \(30 s/.test(err.message),
  );
  const short = await createTestPlane({ reportIntervalSeconds: 2, replicatorNotSeenAfterSeconds: 6 });
  assert.equal(short.cp.options.replicatorNotSeenAfterSeconds, 6);
  await short.close();
  const slow = await createTestPlane({ reportIntervalSeconds: 30 });
  assert.equal(slow.cp.options.replicatorNotSeenAfterSeconds, 90);
  await slow.close();
});
