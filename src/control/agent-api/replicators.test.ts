/**
 * The heartbeat answer a replicator follows: the servers assigned to it that
 * may replicate, those that may not (and why), lists left out while unchanged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTestPlane } from "../testing.ts";

const FINGERPRINT = Array.from({ length: 32 }, () => "AB").join(":");

interface Authorization {
  digest: string;
  allowedSourceServerIDs?: string[];
  refused?: { sourceServerID: string; reason: string }[];
}

test("a heartbeat answers which assigned servers may replicate; disconnect and delete take them out", async () => {
  const t = await createTestPlane({});
  try {
    await t.call("/InitializeService");
    const install = await t.cp.accessKeys.create("install", "test");
    const replicatorKey = await t.cp.accessKeys.create("replicator", "test");
    const heartbeat = async (name: string, authorizationDigest?: string) => {
      const r = await t.call(
        "/ferry/replicator/register",
        {
          name,
          privateAddress: "10.20.0.30:1500",
          certFingerprint: FINGERPRINT,
          ...(authorizationDigest ? { authorizationDigest } : {}),
        },
        { creds: replicatorKey },
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.authorization as Authorization;
    };
    const first = await heartbeat("r1");
    assert.deepEqual(first.allowedSourceServerIDs, [], "nothing assigned yet");
    const ids: string[] = [];
    for (const identity of ["authz-test-0001", "authz-test-0002"]) {
      const reg = await t.call(
        "/ferry/agent/register",
        { identity, sourceProperties: { disks: [{ deviceName: "/dev/vda", bytes: 1 }] } },
        { creds: install },
      );
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      ids.push(reg.body.sourceServerID as string);
    }
    const [a, b] = ids as [string, string];
    const both = await heartbeat("r1", first.digest);
    assert.deepEqual([...(both.allowedSourceServerIDs ?? [])].sort(), [a, b].sort());
    assert.deepEqual(both.refused, []);
    assert.notEqual(both.digest, first.digest);
    assert.deepEqual(await heartbeat("r1", both.digest), { digest: both.digest }, "unchanged: digest only");
    assert.deepEqual(
      (await heartbeat("r2")).allowedSourceServerIDs,
      [],
      "another replicator: not its servers",
    );

    assert.equal((await t.call("/DisconnectFromService", { sourceServerID: a })).status, 200);
    const after = await heartbeat("r1", both.digest);
    assert.deepEqual(after.allowedSourceServerIDs, [b]);
    assert.deepEqual(after.refused, [{ sourceServerID: a, reason: "DISCONNECTED" }]);

    assert.equal((await t.call("/MarkAsArchived", { sourceServerID: a })).status, 200);
    assert.deepEqual((await heartbeat("r1")).refused, [{ sourceServerID: a, reason: "ARCHIVED" }]);
    assert.equal((await t.call("/DeleteSourceServer", { sourceServerID: a })).status, 204);
    const deleted = await heartbeat("r1");
    assert.deepEqual([deleted.allowedSourceServerIDs, deleted.refused], [[b], []]);
  } finally {
    await t.close();
  }
});
