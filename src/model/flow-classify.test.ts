import { test } from "node:test";
import assert from "node:assert/strict";
import {
  agentNotSeenFlow,
  classifyFailure,
  dataPlaneFailure,
  findingFor,
  type FlowContext,
  type FlowFailure,
} from "./flow-classify.ts";
import { flowForMgnFailure, formatFinding, mgnFailureForFlow } from "./flows.ts";

const source = (flow: FlowContext["flow"], role: FlowContext["role"]): FlowContext => ({
  flow,
  role,
  side: "source",
  localAddress: "10.10.0.10",
});

const connect = (
  error: string,
  extra: Partial<Extract<FlowFailure, { check: "connect" }>> = {},
): FlowFailure => ({
  check: "connect",
  address: "10.20.0.30",
  port: 1500,
  error,
  ...extra,
});

const cases: {
  name: string;
  ctx: FlowContext;
  failure: FlowFailure;
  code: string;
  cause: RegExp;
  fix: RegExp;
}[] = [
  {
    name: "a dropped SYN to 1500 is the replicator's security group",
    ctx: source("F7", "replicator"),
    failure: connect("ETIMEDOUT", { routing: "PRIVATE_IP" }),
    code: "SG_1500_MISSING",
    cause: /security group drops TCP 1500 from 10\.10\.0\.10/,
    fix: /allow TCP 1500 from 10\.10\.0\.10/,
  },
  {
    name: "a refused connection is nothing listening, not a firewall drop",
    ctx: source("F7", "replicator"),
    failure: connect("ECONNREFUSED"),
    code: "PORT_REFUSED",
    cause: /nothing listens on 10\.20\.0\.30:1500/,
    fix: /ferry replicator run/,
  },
  {
    name: "no route is the private link's route",
    ctx: source("F7", "replicator"),
    failure: connect("ENETUNREACH"),
    code: "NO_ROUTE",
    cause: /no route to 10\.20\.0\.30/,
    fix: /ip route add/,
  },
  {
    name: "EHOSTUNREACH is no route too",
    ctx: source("F2", "service"),
    failure: { check: "connect", address: "10.20.0.10", port: 443, error: "EHOSTUNREACH" },
    code: "NO_ROUTE",
    cause: /no route/,
    fix: /route/,
  },
  {
    name: "timeouts everywhere in the staging network are the return route",
    ctx: source("F2", "service"),
    failure: {
      check: "connect",
      address: "10.20.0.10",
      port: 443,
      error: "ETIMEDOUT",
      stagingAllTimedOut: true,
    },
    code: "RETURN_ROUTE_MISSING",
    cause: /no route back to the source/,
    fix: /route in the staging network .*10\.10\.0\.10/,
  },
  {
    name: "a dropped SYN to 443 on the object store is its security group",
    ctx: source("F1", "object-store"),
    failure: { check: "connect", address: "10.20.0.20", port: 443, error: "ETIMEDOUT" },
    code: "SG_443_MISSING",
    cause: /object-store endpoint's security group drops TCP 443/,
    fix: /allow TCP 443 from 10\.10\.0\.10/,
  },
  {
    name: "PUBLIC_IP on a private link, whatever the socket said",
    ctx: source("F7", "replicator"),
    failure: connect("ENETUNREACH", {
      routing: "PUBLIC_IP",
      privateAddress: "10.20.0.30:1500",
      privateReachable: true,
    }),
    code: "PUBLIC_IP_ON_PRIVATE_LINK",
    cause: /PUBLIC_IP is selected/,
    fix: /PRIVATE_IP/,
  },
  {
    name: "a name that does not resolve is a missing hosts line",
    ctx: source("F3", "service"),
    failure: { check: "resolve", name: "mgn.us-east-1.ferry.lab", error: "ENOTFOUND" },
    code: "HOSTS_LINE_MISSING",
    cause: /no hosts line .* for mgn\.us-east-1\.ferry\.lab/,
    fix: /\/etc\/hosts/,
  },
  {
    name: "a name resolving to a public address",
    ctx: source("F3", "service"),
    failure: { check: "resolve-address", name: "mgn.example", addresses: ["52.1.2.3"] },
    code: "NAME_WRONG_ADDRESS",
    cause: /public address/,
    fix: /private IP/,
  },
  {
    name: "a pinned CA that is not in the chain is a wrong fingerprint",
    ctx: source("F2", "service"),
    failure: {
      check: "tls",
      address: "10.20.0.10:443",
      error: "CA_FINGERPRINT_MISMATCH",
      pinned: "AA:BB",
      presented: ["CC:DD"],
    },
    code: "CA_FINGERPRINT_MISMATCH",
    cause: /wrong CA fingerprint/,
    fix: /fingerprint `ferry server` prints/,
  },
  {
    name: "a certificate without the name",
    ctx: source("F2", "service"),
    failure: {
      check: "tls",
      address: "10.20.0.10:443",
      error: "ERR_TLS_CERT_ALTNAME_INVALID",
      name: "mgn.x",
    },
    code: "TLS_NAME_MISMATCH",
    cause: /not in its certificate/,
    fix: /name in the certificate/,
  },
  {
    name: "an untrusted certificate",
    ctx: source("F2", "service"),
    failure: { check: "tls", address: "10.20.0.10:443", error: "SELF_SIGNED_CERT_IN_CHAIN" },
    code: "TLS_UNTRUSTED",
    cause: /not signed by the CA/,
    fix: /--ca-file/,
  },
  {
    name: "a refused signature for an expired date is clock skew",
    ctx: source("F2", "service"),
    failure: { check: "clock", skewSeconds: 3600, via: "sigv4" },
    code: "CLOCK_SKEW",
    cause: /clock skew/,
    fix: /NTP/,
  },
  {
    name: "an unknown key",
    ctx: source("F2", "service"),
    failure: { check: "auth", errorType: "UnrecognizedClientException", message: "unknown" },
    code: "AUTH_REJECTED",
    cause: /unknown to this control plane/,
    fix: /install-scoped key/,
  },
  {
    name: "no replicator assigned",
    ctx: source("F7", "replicator"),
    failure: { check: "assignment", reason: "none" },
    code: "NO_REPLICATOR_ASSIGNED",
    cause: /no live replicator/,
    fix: /ferry replicator run --join/,
  },
  {
    name: "the replicator refuses the source's certificate",
    ctx: source("F7", "replicator"),
    failure: { check: "pairing", address: "10.20.0.30:1500", error: "CLOSED" },
    code: "PAIRING_REFUSED",
    cause: /does not trust the control plane/,
    fix: /same control plane/,
  },
  {
    name: "half-open connections on the replicator are the return route",
    ctx: { flow: "F7", role: "replicator", side: "replicator" },
    failure: { check: "return-path", peers: ["10.10.0.10"], port: 1500 },
    code: "RETURN_ROUTE_MISSING",
    cause: /no route back to 10\.10\.0\.10/,
    fix: /ip route add/,
  },
  {
    name: "a package that is not published",
    ctx: source("F1", "object-store"),
    failure: { check: "http", url: "https://b.s3/latest/linux/x.sha256", status: 404 },
    code: "PACKAGE_NOT_PUBLISHED",
    cause: /not in the bucket/,
    fix: /ferry release publish/,
  },
  {
    name: "a package not published to the control plane (an installer without --s3-endpoint)",
    ctx: source("F1", "service"),
    failure: {
      check: "http",
      url: "https://mgn.lab/ferry/agent/package.sha256",
      status: 404,
      from: "control-plane",
    },
    code: "PACKAGE_NOT_PUBLISHED",
    cause: /no agent package has been published to this control plane/,
    fix: /ferry release publish --endpoint/,
  },
  {
    name: "the control plane refusing the download to this key",
    ctx: source("F1", "service"),
    failure: {
      check: "http",
      url: "https://mgn.lab/ferry/agent/package.sha256",
      status: 403,
      from: "control-plane",
    },
    code: "PACKAGE_REFUSED",
    cause: /refuses this key/,
    fix: /--scope install/,
  },
  {
    name: "a slow probe",
    ctx: source("F7", "replicator"),
    failure: { check: "throughput", bytesPerSecond: 1000, minimumBytesPerSecond: 1048576 },
    code: "SLOW_DATA_PLANE",
    cause: /slower/,
    fix: /bandwidthThrottling/,
  },
];

for (const c of cases) {
  test(`classify: ${c.name}`, () => {
    const v = classifyFailure(c.ctx, c.failure);
    assert.equal(v.code, c.code);
    assert.match(v.cause, c.cause);
    assert.match(v.fix, c.fix);
    assert.ok(v.observed.length > 0);
  });
}

test("classify: timeout, reset, no route and an unresolved name read differently", () => {
  const ctx = source("F7", "replicator");
  const observed = ["ETIMEDOUT", "ECONNREFUSED", "EHOSTUNREACH"].map(
    (e) => classifyFailure(ctx, connect(e)).observed,
  );
  assert.equal(new Set(observed).size, 3);
  assert.match(observed[0]!, /timed out/);
  assert.match(observed[1]!, /refused/);
  assert.match(observed[2]!, /no route/i);
});

test("the agent's data-plane errors map to F7 failures", () => {
  const table: [string, string | undefined][] = [
    ["REPLICATOR_TIMEOUT", "SG_1500_MISSING"],
    ["REPLICATOR_REFUSED", "PORT_REFUSED"],
    ["REPLICATOR_NO_ROUTE", "NO_ROUTE"],
    ["REPLICATOR_FINGERPRINT_MISMATCH", "REPLICATOR_FINGERPRINT_MISMATCH"],
    ["REPLICATOR_CLOSED", "PAIRING_REFUSED"],
    ["DISK_EMPTY", undefined],
  ];
  for (const [code, want] of table) {
    const f = dataPlaneFailure(code, "10.20.0.30", 1500, "PRIVATE_IP");
    assert.equal(f && classifyFailure(source("F7", "replicator"), f).code, want, code);
  }
  const pub = dataPlaneFailure("REPLICATOR_TIMEOUT", "198.51.100.30", 1500, "PUBLIC_IP")!;
  assert.equal(classifyFailure(source("F7", "replicator"), pub).code, "PUBLIC_IP_ON_PRIVATE_LINK");
});

test("MGN steps and errors map to flows and back", () => {
  assert.equal(flowForMgnFailure("CONNECT_AGENT_TO_REPLICATION_SERVER"), "F7");
  assert.equal(flowForMgnFailure("FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER"), "F7");
  assert.equal(flowForMgnFailure("AUTHENTICATE_WITH_SERVICE"), "F4");
  assert.equal(flowForMgnFailure("DOWNLOAD_REPLICATION_SOFTWARE"), "F6");
  assert.equal(flowForMgnFailure("AGENT_NOT_SEEN"), "F2");
  assert.equal(flowForMgnFailure("SNAPSHOTS_FAILURE"), undefined);
  assert.deepEqual(mgnFailureForFlow("F7", "SG_1500_MISSING"), {
    step: "CONNECT_AGENT_TO_REPLICATION_SERVER",
    error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
  });
  assert.equal(mgnFailureForFlow("F7", "PAIRING_REFUSED").step, "PAIR_REPLICATION_SERVER_WITH_AGENT");
  assert.match(
    formatFinding({ flow: "F7", observed: "o", cause: "c", fix: "f" }),
    /^F7 data plane .*: o — c\. Fix: f$/,
  );
  assert.match(
    formatFinding({ flow: "F7", observed: "o", cause: "c", fix: "f", code: "SG_1500_MISSING" }),
    / \[SG_1500_MISSING\]$/,
  );
});

test("an agent not seen: F2 from the control plane's own knowledge, unless it recorded an F2 cause itself", () => {
  const now = Date.UTC(2026, 10, 25, 8, 0, 0);
  const silent = agentNotSeenFlow(
    "s-0123456789abcdef0",
    { registeredAt: now - 90_000, lastSeenAt: now - 42_000 },
    now,
    20_000,
  );
  assert.equal(silent.flow, "F2");
  assert.equal(silent.ok, false);
  assert.equal(silent.code, "AGENT_NOT_SEEN");
  assert.equal(
    silent.observed,
    "no report from the agent of s-0123456789abcdef0 since 2026-11-25T07:59:18.000Z (42 s ago; AGENT_NOT_SEEN after 20 s)",
  );
  // The likely causes in the setup's terms, as the doctor names them.
  assert.match(silent.cause, /security group does not allow TCP 443 from the source/);
  assert.match(silent.cause, /no hosts line .* for the service name \(F3\)/);
  assert.match(silent.cause, /no return route to the source/);
  assert.match(silent.fix, /ferry doctor --source/);
  assert.match(silent.fix, /HOSTS_LINE_MISSING, SG_443_MISSING, RETURN_ROUTE_MISSING, CLOCK_SKEW/);
  assert.equal(silent.at, new Date(now).toISOString());
  // One line for MGN's rawError: flow, observation, cause, fix, code.
  assert.match(
    formatFinding(silent),
    /^F2 service from the source \(443\): no report from .* Fix: run `ferry doctor --source`.*\[AGENT_NOT_SEEN\]$/,
  );
  // Never seen since registration: counted from the registration; no threshold given, none said.
  assert.match(
    agentNotSeenFlow("s-1", { registeredAt: now - 30_000 }, now).observed,
    /since 2026-11-25T07:59:30\.000Z \(30 s ago\)$/,
  );
  // A data-plane failure the agent reported before it went silent is not why it is silent.
  const f7 = {
    flow: "F7" as const,
    ok: false as const,
    observed: "o",
    cause: "c",
    fix: "f",
    code: "SG_1500_MISSING",
    at: "x",
  };
  assert.equal(agentNotSeenFlow("s-1", { registeredAt: 0, failedFlow: f7 }, now).code, "AGENT_NOT_SEEN");
  // A refused signature the control plane recorded on F2 says more than the silence: its
  // cause, fix and code, with the silence in what was observed.
  const skew = {
    ...f7,
    flow: "F2" as const,
    observed: "the server's clock is 3600 s ahead of this host's",
    cause: "clock skew",
    fix: "NTP",
    code: "CLOCK_SKEW",
    at: "2026-11-25T07:59:50.000Z",
  };
  const recorded = agentNotSeenFlow(
    "s-1",
    { registeredAt: 0, lastSeenAt: now - 70_000, failedFlow: skew },
    now,
    60_000,
  );
  assert.deepEqual({ ...recorded, observed: "" }, { ...skew, observed: "" });
  assert.equal(
    recorded.observed,
    "no report from the agent of s-1 since 2026-11-25T07:58:50.000Z (70 s ago; AGENT_NOT_SEEN after 60 s); the control plane refused its request at 2026-11-25T07:59:50.000Z: the server's clock is 3600 s ahead of this host's",
  );
});

test("a replicator not seen: F4, its last heartbeat and threshold, the causes on its side, its doctor", () => {
  const f = findingFor(
    { flow: "F4", role: "service", side: "replicator" },
    {
      check: "heartbeat",
      who: "replicator r1 (i-1)",
      ageSeconds: 95,
      lastSeenAt: "2026-11-25T07:58:25.000Z",
      thresholdSeconds: 60,
    },
  );
  assert.equal(f.code, "REPLICATOR_NOT_SEEN");
  assert.equal(
    f.observed,
    "no heartbeat from replicator r1 (i-1) since 2026-11-25T07:58:25.000Z (95 s ago; counted as gone after 60 s)",
  );
  assert.match(f.cause, /TCP 443 from the replicator/);
  assert.match(f.fix, /ferry doctor --replicator/);
});
