import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "../lib/errors.ts";
import { silentLogger } from "../lib/log.ts";
import { authorizationDigest, type ReplicatorAuthorization } from "../model/replicator.ts";
import {
  type AuthorizationView,
  ControlPlaneAuthorization,
  decide,
  guardStore,
  type Knowledge,
} from "./authorize.ts";
import { LocalDirectoryStore } from "./store/local-directory-store.ts";

const A = "s-aaaaaaaaaaaaaaaaa";
const D = "s-ddddddddddddddddd";
const C = "s-ccccccccccccccccc";
const U = "s-uuuuuuuuuuuuuuuuu";

const view: AuthorizationView = {
  digest: "x",
  allowed: new Set([A]),
  refused: new Map([
    [D, "DISCONNECTED"],
    [C, "CUTOVER"],
  ]),
};

function answer(
  allowed: string[],
  refused: ReplicatorAuthorization["refused"] = [],
): ReplicatorAuthorization {
  return { digest: authorizationDigest(allowed, refused), allowedSourceServerIDs: allowed, refused };
}

test("the decision table", () => {
  const cached: Knowledge = { kind: "cached" };
  const refreshed: Knowledge = { kind: "refreshed" };
  const down: Knowledge = { kind: "unreachable", error: "connect ECONNREFUSED" };
  const code = (d: ReturnType<typeof decide>) =>
    d.allow ? "allow" : "refresh" in d ? "refresh" : `${d.error.code}: ${d.error.message}`;
  // No answer with an authorization (an older control plane): certificates alone decide.
  for (const k of [cached, refreshed, down]) assert.equal(code(decide(undefined, D, k)), "allow");
  // Allowed: pass without asking, whatever is known of the control plane.
  for (const k of [cached, refreshed, down]) assert.equal(code(decide(view, A, k)), "allow");
  // Anything else is asked again before a refusal.
  for (const id of [D, C, U]) assert.equal(code(decide(view, id, cached)), "refresh");
  assert.match(
    code(decide(view, D, refreshed)),
    new RegExp(`^AUTH_FAILED: source server ${D} is disconnected from the service .*reinstall the agent`),
  );
  assert.match(code(decide(view, C, refreshed)), /^AUTH_FAILED: .* cut over and finalized/);
  assert.match(
    code(decide(view, U, refreshed)),
    new RegExp(`^NOT_ASSIGNED: source server ${U} is not assigned`),
  );
  // Control plane down: what it last refused stays refused; the unknown is refused, retryably, saying why.
  assert.match(code(decide(view, D, down)), /^AUTH_FAILED: .*disconnected/);
  assert.match(
    code(decide(view, U, down)),
    /^NOT_ASSIGNED: .*could not be asked again: connect ECONNREFUSED/,
  );
});

test("a miss asks the control plane once more; a new assignment passes, a refusal names the server", async () => {
  const auth = new ControlPlaneAuthorization({ log: silentLogger, minRefreshIntervalMs: 0 });
  assert.deepEqual(auth.update(answer([A])), []);
  let refreshes = 0;
  let next = answer([A, U], [{ sourceServerID: D, reason: "DISCONNECTED" }]);
  auth.setRefresh(async () => {
    refreshes++;
    auth.update(next);
  });
  await auth.check(A);
  assert.equal(refreshes, 0, "an allowed server costs no request");
  await auth.check(U);
  assert.equal(refreshes, 1, "assigned since the last answer: one refresh, then allowed");
  await assert.rejects(
    auth.check(D),
    (e: unknown) => e instanceof FerryError && e.code === "AUTH_FAILED" && e.message.includes(D),
  );
  // The next heartbeat's answer drops A: it is reported, its writes and HELLOs are refused from now on.
  next = answer([U], [{ sourceServerID: A, reason: "ARCHIVED" }]);
  const digest = auth.digest();
  assert.deepEqual(auth.update(next), [A]);
  await assert.rejects(auth.check(A), /is archived/);
  assert.notEqual(auth.digest(), digest);
  assert.match(auth.writeRefusal(A)?.message ?? "", new RegExp(`source server ${A} is archived`));
  assert.equal(auth.writeRefusal(U), undefined);
  // Unchanged lists come as a digest alone and keep the copy.
  assert.deepEqual(auth.update({ digest: auth.digest()! }), []);
  assert.equal(auth.writeRefusal(U), undefined);
  assert.ok(auth.writeRefusal(A));
  // An answer without an authorization (older control plane): back to certificates alone.
  auth.update(undefined);
  assert.equal(auth.writeRefusal(A), undefined);
});

test("update reports the servers that lost their permission", () => {
  const auth = new ControlPlaneAuthorization({ log: silentLogger });
  auth.update(answer([A, U]));
  assert.deepEqual(auth.update(answer([U], [{ sourceServerID: A, reason: "DISCONNECTED" }])), [A]);
});

test("the control plane down, or slow: allowed servers pass, others are refused in bounded time", async () => {
  const auth = new ControlPlaneAuthorization({
    log: silentLogger,
    refreshTimeoutMs: 200,
    minRefreshIntervalMs: 0,
  });
  auth.update(answer([A], [{ sourceServerID: D, reason: "DISCONNECTED" }]));
  auth.setRefresh(() => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:1")));
  await auth.check(A);
  await assert.rejects(auth.check(U), /NOT_ASSIGNED|could not be asked again: connect ECONNREFUSED/);
  await assert.rejects(auth.check(D), /disconnected from the service/);
  auth.setRefresh(() => new Promise(() => {}));
  const t0 = performance.now();
  await assert.rejects(auth.check(U), /no answer within 200 ms/);
  assert.ok(performance.now() - t0 < 2000, "a hung control plane does not hold the HELLO");
});

test("misses in a burst share refreshes, at most one per interval", async () => {
  const auth = new ControlPlaneAuthorization({ log: silentLogger, minRefreshIntervalMs: 300 });
  auth.update(answer([A]));
  let refreshes = 0;
  let inFlight: Promise<void> | undefined;
  auth.setRefresh(
    () =>
      (inFlight ??= (async () => {
        refreshes++;
        await new Promise((r) => setTimeout(r, 20));
        inFlight = undefined;
      })()),
  );
  const t0 = performance.now();
  await Promise.allSettled(Array.from({ length: 20 }, () => auth.check(U)));
  await Promise.allSettled(Array.from({ length: 20 }, () => auth.check(U)));
  assert.ok(refreshes <= 4, `${refreshes} refreshes for 40 misses`);
  assert.ok(performance.now() - t0 >= 250, "the second burst waited for the interval");
});

test("guardStore refuses writes of a refused server, passes reads, deletes and other servers", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-authorize-"));
  const inner = new LocalDirectoryStore(dir);
  try {
    const refused = new Set<string>();
    const store = guardStore(inner, (id) =>
      refused.has(id) ? new FerryError("AUTH_FAILED", `source server ${id} is refused`) : undefined,
    );
    await store.put(`volumes/${A}/d0/x`, Buffer.from("one"));
    const app = await store.openAppendable!(`volumes/${A}/d0/seg`);
    await app.append([Buffer.from("ab")]);
    refused.add(A);
    await assert.rejects(store.put(`volumes/${A}/d0/y`, Buffer.from("two")), /source server s-a+ is refused/);
    await assert.rejects(store.putMeta(`volumes/${A}/d0/meta.json`, Buffer.from("{}")), /is refused/);
    await assert.rejects(app.append([Buffer.from("cd")]), /is refused/, "an open segment takes no more");
    await assert.rejects(store.openAppendable!(`volumes/${A}/d0/seg2`), /is refused/);
    assert.equal(app.size, 2);
    await app.close();
    assert.equal((await store.get(`volumes/${A}/d0/x`)).toString(), "one");
    await store.put(`volumes/${U}/d0/x`, Buffer.from("other"));
    await store.delete(`volumes/${A}/d0/x`);
    assert.deepEqual(
      (await store.list("volumes/")).map((o) => o.key),
      [`volumes/${U}/d0/x`],
    );
  } finally {
    await inner.close();
    await rm(dir, { recursive: true, force: true });
  }
});
