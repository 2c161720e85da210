import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createLabPlan,
  DATA_PLANE_PORT,
  hostOf,
  hostsFile,
  replicatorRoles,
  ruleArgs,
  SERVICE_PORT,
} from "./plan.ts";
import { listStates, loadState, saveState, type LabState } from "./state.ts";
import { tearDown } from "./teardown.ts";

/** Is `ip` inside `cidr` (IPv4, /8../32)? */
function within(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split("/");
  const n = (a: string) => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n(ip) / size) === Math.floor(n(net!) / size);
}

test("the plan: two networks, a router between them, no default route", () => {
  const plan = createLabPlan("abcd12", { replicators: 2 });
  assert.deepEqual(replicatorRoles(plan), ["replicator1", "replicator2"]);
  assert.equal(new Set(plan.hosts.map((h) => h.ns)).size, plan.hosts.length);
  for (const h of plan.hosts) assert.match(h.ns, /^ferry-lab-abcd12-[a-z0-9]+$/);
  assert.ok(within(hostOf(plan, "source").address, plan.cidr.source));
  for (const h of plan.hosts.filter((x) => x.network === "staging"))
    assert.ok(within(h.address, plan.cidr.staging), h.role);
  for (const r of plan.routes) {
    assert.notEqual(r.to, "default");
    assert.notEqual(r.to, "0.0.0.0/0");
  }
  // Each staging host routes back to the source; the source routes to staging, through the router.
  const staging = plan.hosts.filter((h) => h.network === "staging").map((h) => h.role);
  assert.deepEqual(
    plan.routes.filter((r) => r.returnRoute).map((r) => r.host),
    staging,
  );
  assert.ok(
    plan.routes.some(
      (r) => r.host === "source" && r.to === plan.cidr.staging && r.via === plan.gateway.source,
    ),
  );
  // The public addresses exist on no host and in neither network.
  for (const a of Object.values(plan.publicAddress)) {
    assert.ok(!within(a, plan.cidr.source) && !within(a, plan.cidr.staging), a);
    assert.ok(!plan.hosts.some((h) => h.address.split(",").includes(a)));
  }
});

test("the rules: 443 on the endpoints from the source and each replicator, 1500 on each replicator from the source", () => {
  const plan = createLabPlan("abcd12", { replicators: 2 });
  const byFlow = (f: string) => plan.rules.filter((r) => r.flow === f);
  assert.deepEqual(
    byFlow("F1").map((r) => [r.host, r.port, r.from]),
    [["objectStore", SERVICE_PORT, plan.cidr.source]],
  );
  assert.deepEqual(
    byFlow("F2").map((r) => [r.host, r.port, r.from]),
    [["service", SERVICE_PORT, plan.cidr.source]],
  );
  assert.deepEqual(
    byFlow("F4").map((r) => r.from),
    ["10.20.0.30/32", "10.20.0.31/32"],
  );
  assert.deepEqual(
    byFlow("F6").map((r) => r.host),
    ["objectStore", "objectStore"],
  );
  assert.deepEqual(
    byFlow("F7").map((r) => [r.host, r.port]),
    [
      ["replicator1", DATA_PLANE_PORT],
      ["replicator2", DATA_PLANE_PORT],
    ],
  );
  // Nothing opens anything on the source or the router.
  assert.ok(!plan.rules.some((r) => r.host === "source" || r.host === "router"));
  const args = ruleArgs(byFlow("F7")[0]!);
  assert.deepEqual(args.slice(0, 6), ["-p", "tcp", "-s", plan.cidr.source, "--dport", "1500"]);
  assert.equal(args.at(-1), "ACCEPT");
});

test("the hosts files map the service, path-style and virtual-hosted names to the endpoints", () => {
  const plan = createLabPlan("abcd12", { region: "eu-central-1" });
  assert.equal(plan.names.bucketHost, `${plan.names.bucket}.${plan.names.objectStore}`);
  assert.equal(plan.names.bucket, "ferry-agent-eu-central-1");
  const text = hostsFile(plan.hostsLines.source ?? []);
  const map = new Map(
    text
      .split("\n")
      .filter(Boolean)
      .flatMap((l) =>
        l
          .split(/\s+/)
          .slice(1)
          .map((n) => [n, l.split(/\s+/)[0]!] as const),
      ),
  );
  assert.equal(map.get(plan.names.service), hostOf(plan, "service").address);
  assert.equal(map.get(plan.names.objectStore), hostOf(plan, "objectStore").address);
  assert.equal(map.get(plan.names.bucketHost), hostOf(plan, "objectStore").address);
  assert.equal(map.get("localhost"), "::1");
  assert.equal(plan.hostsLines.router, undefined);
  assert.equal(plan.stagingSubnetId, "subnet-0a140000");
  assert.throws(() => createLabPlan("abcd12", { replicators: 0 }), RangeError);
});

test("state files round-trip, and tearing down a lab that is already gone is harmless", async () => {
  const registry = await mkdtemp(join(tmpdir(), "ferry-lab-registry-"));
  const env = { ...process.env, FERRY_LAB_STATE_DIR: registry };
  try {
    const state: LabState = {
      version: 1,
      id: "zz9999",
      dir: join(registry, "not-a-lab-dir"),
      createdAt: new Date().toISOString(),
      plan: createLabPlan("zz9999"),
      namespaces: ["ferry-lab-zz9999-src"],
      hostsDirs: ["/etc/netns/ferry-lab-zz9999-src", "/etc/passwd-not-ours"],
      processes: [],
      loops: [],
      knobs: {},
    };
    await saveState(state, env);
    assert.deepEqual(await loadState("zz9999", env), state);
    assert.deepEqual(
      (await listStates(env)).map((s) => s.id),
      ["zz9999"],
    );
    const report = await tearDown(state, env);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.namespaces, []);
    assert.equal(await loadState("zz9999", env), undefined);
    const again = await tearDown(state, env);
    assert.deepEqual(again.errors, []);
  } finally {
    await rm(registry, { recursive: true, force: true });
  }
});
