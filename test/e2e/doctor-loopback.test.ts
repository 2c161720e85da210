/**
 * `ferry doctor`'s probes and the source runner against real servers on
 * loopback: an embedded control plane with its joined replicator, an agent
 * registered through the real API. Every flow passes; then a wrong CA pin,
 * a port nothing listens on and a replicator that refuses the source's
 * certificate are each named.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startEmbedded, type Embedded } from "../../src/cli/embedded.ts";
import { createControlClient } from "../../src/agent/control-client.ts";
import { createCa, createCsr, issueCertificate } from "../../src/lib/pki.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { runSourceDoctor } from "../../src/net/doctor/source.ts";
import { probeDataPlane } from "../../src/net/doctor/probes.ts";
import { main } from "../../src/cli/main.ts";
import { publishToControlPlane } from "../../src/release/publish-control.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import { Writable } from "node:stream";

describe("ferry doctor on loopback", { timeout: 120_000 }, () => {
  let scratch: Scratch;
  let cp: Embedded;
  let caPem: string;
  let agent: { sourceServerID: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  let clientCertificate: { certPem: string; keyPem: string };

  before(async () => {
    scratch = await createScratch();
    cp = await startEmbedded({
      dataDir: scratch.dir,
      listen: { host: "127.0.0.1", port: 0 },
      replicatorListen: { host: "127.0.0.1", port: 0 },
      region: "us-east-1",
      certNames: ["localhost", "127.0.0.1"],
      log: silentLogger,
    });
    caPem = await readFile(cp.caFile, "utf8");
    await cp.controlPlane.store.initialize(Date.now());
    const install = await cp.controlPlane.accessKeys.create("install", "doctor test");
    const client = createControlClient({
      endpoint: cp.endpoint,
      region: cp.region,
      credentials: install,
      caPem,
    });
    const { csrPem, keyPem } = await createCsr("ferry-agent doctor-test");
    try {
      const answer = await client.register({
        identity: "doctor-test-0001",
        csr: csrPem,
        sourceProperties: { disks: [{ deviceName: "/dev/vda", bytes: 1048576 }] },
      });
      agent = { sourceServerID: answer.sourceServerID, credentials: answer.agentCredentials };
      clientCertificate = { certPem: answer.dataPlaneCertificate!.certificatePem, keyPem };
    } finally {
      client.close();
    }
  });

  after(async () => {
    await cp?.close();
    await scratch?.cleanup();
  });

  const run = (over: Partial<Parameters<typeof runSourceDoctor>[0]> = {}) =>
    runSourceDoctor({
      endpoint: cp.endpoint,
      region: cp.region,
      credentials: agent.credentials,
      caPem,
      sourceServerID: agent.sourceServerID,
      clientCertificate,
      timeoutMs: 3000,
      probeBytes: 2 * 1024 * 1024,
      ...over,
    });

  test("every flow passes: names, TCP, TLS, clock, signed call, assignment, 1500, pairing, throughput", async () => {
    const flows = await run();
    assert.deepEqual(
      flows.map((f) => [f.flow, f.ok]),
      [
        ["F3", true],
        ["F2", true],
        ["F7", true],
      ],
      JSON.stringify(flows, null, 1),
    );
    const f7 = flows.find((f) => f.flow === "F7")!;
    assert.deepEqual(
      f7.checks.map((c) => c.check),
      ["assignment", "tcp", "return-path", "pairing", "throughput"],
    );
    assert.match(f7.observed, /MiB\/s/);
  });

  test("a wrong CA pin is named as such, the right one passes", async () => {
    const wrong = (await createCa("not this control plane")).fingerprint;
    const bad = (await run({ caPem: undefined, caFingerprint: wrong })).find((f) => f.flow === "F2")!;
    assert.equal(bad.code, "CA_FINGERPRINT_MISMATCH");
    assert.ok(bad.observed.includes(wrong));
    const good = (await run({ caPem: undefined, caFingerprint: cp.caFingerprint })).find(
      (f) => f.flow === "F2",
    )!;
    assert.equal(good.ok, true, JSON.stringify(good));
  });

  test("no CA at all: the certificate is not trusted", async () => {
    const f2 = (await run({ caPem: undefined })).find((f) => f.flow === "F2")!;
    assert.equal(f2.code, "TLS_UNTRUSTED");
  });

  test("a port nothing listens on is refused, not dropped", async () => {
    const port = new URL(cp.endpoint).port;
    const flows = await run({ endpoint: cp.endpoint.replace(`:${port}`, ":1") });
    const f2 = flows.find((f) => f.flow === "F2")!;
    assert.equal(f2.code, "PORT_REFUSED");
    assert.match(f2.observed, /refused/);
  });

  test("an install key before registration: authenticated, F7 not checked yet", async () => {
    const install = await cp.controlPlane.accessKeys.create("install", "doctor test");
    const flows = await run({
      credentials: install,
      sourceServerID: undefined,
      clientCertificate: undefined,
    });
    assert.deepEqual(
      flows.map((f) => [f.flow, f.ok, f.skipped ?? false]),
      [
        ["F3", true, false],
        ["F2", true, false],
        ["F7", true, true],
      ],
    );
    assert.match(flows[1]!.observed, /authenticated .*AccessDenied/);
  });

  test("a key the control plane does not know: the signed call is refused", async () => {
    const flows = await run({
      credentials: { accessKeyId: "AKIAUNKNOWNUNKNOWN00", secretAccessKey: "x".repeat(40) },
    });
    const f2 = flows.find((f) => f.flow === "F2")!;
    assert.equal(f2.code, "AUTH_REJECTED");
    assert.match(f2.cause, /unknown/);
  });

  test("the replicator refuses a certificate from another CA (pairing)", async () => {
    const [host, port] = cp.replicator.split(":");
    const stranger = await issueCertificate(await createCa("elsewhere"), {
      commonName: "x",
      usages: ["client"],
    });
    const base = {
      address: host!,
      port: Number(port),
      fingerprint: cp.replicatorFingerprint,
      bytes: 1024,
      timeoutMs: 5000,
    };
    const refused = await probeDataPlane({ ...base, clientCertificate: stranger });
    assert.equal(refused.ok ? "ok" : refused.stage, "pairing");
    const wrong = await probeDataPlane({ ...base, fingerprint: cp.caFingerprint, clientCertificate });
    assert.equal(wrong.ok ? "ok" : wrong.stage, "fingerprint");
  });

  test("the CLI: terminal report, --json and the exit code", async () => {
    const out: string[] = [];
    const stdout = new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) });
    const ctx = { stdout, stderr: stdout, isTTY: false, env: {}, signal: new AbortController().signal };
    const args = [
      "doctor",
      "--source",
      "--state-dir",
      join(scratch.dir, "none"),
      "--endpoint",
      cp.endpoint,
      "--region",
      cp.region,
      "--ca-fingerprint",
      (await createCa("x")).fingerprint,
      "--timeout-ms",
      "2000",
    ];
    assert.equal(await main(args, ctx), 1);
    const text = out.join("");
    assert.match(text, /^✓ F3 name resolution: \S+ → /m);
    assert.match(
      text,
      /^✗ F2 service from the source \(443\) \[CA_FINGERPRINT_MISMATCH\]\n {4}observed: .*\n {4}cause: {4}wrong CA fingerprint/m,
    );
    out.length = 0;
    assert.equal(await main([...args.slice(0, 8), "--ca-file", cp.caFile, "--json"], ctx), 0);
    const json = JSON.parse(out.join("")) as {
      flows: { flow: string; ok: boolean; observed: string; cause: string; fix: string }[];
    };
    assert.deepEqual(Object.keys(json.flows[0]!).slice(0, 5), ["flow", "ok", "observed", "cause", "fix"]);
    assert.ok(json.flows.every((f) => f.ok));
  });

  test("before installing without --s3-endpoint: F1 is the package on the control plane, missing, then published", async () => {
    const install = await cp.controlPlane.accessKeys.create("install", "doctor F1 test");
    const out: string[] = [];
    const stdout = new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) });
    const ctx = {
      stdout,
      stderr: stdout,
      isTTY: false,
      env: { AWS_ACCESS_KEY_ID: install.accessKeyId, AWS_SECRET_ACCESS_KEY: install.secretAccessKey },
      signal: new AbortController().signal,
    };
    type Flow = { flow: string; ok: boolean; observed: string; cause: string; fix: string; code?: string };
    const doctor = async () => {
      out.length = 0;
      const code = await main(
        [
          "doctor",
          "--source",
          "--state-dir",
          join(scratch.dir, "none"),
          "--endpoint",
          cp.endpoint,
          "--region",
          cp.region,
          "--ca-file",
          cp.caFile,
          "--timeout-ms",
          "2000",
          "--json",
        ],
        ctx,
      );
      return { code, flows: (JSON.parse(out.join("")) as { flows: Flow[] }).flows };
    };
    const missing = await doctor();
    assert.equal(missing.code, 1);
    assert.deepEqual(
      missing.flows.map((f) => [f.flow, f.ok]),
      [
        ["F3", true],
        ["F1", false],
        ["F2", true],
        ["F7", true],
      ],
    );
    const f1 = missing.flows[1]!;
    assert.equal(f1.code, "PACKAGE_NOT_PUBLISHED");
    assert.match(f1.observed, /\/ferry\/agent\/package\.sha256 answered 404 .*no --s3-endpoint/);
    assert.match(f1.cause, /published to this control plane/);
    assert.match(f1.fix, /ferry release publish --endpoint/);

    // The operator publishes to the control plane; the installer's download is there now.
    const operator = await cp.controlPlane.accessKeys.create("operator", "doctor F1 test");
    const dir = join(scratch.dir, "release");
    await mkdir(dir, { recursive: true });
    const pkg = randomBytes(64 * 1024);
    const sha256 = createHash("sha256").update(pkg).digest("hex");
    await writeFile(join(dir, "ferry-agent-linux-x64.tar.gz"), pkg);
    await writeFile(
      join(dir, "ferry-agent-linux-x64.tar.gz.sha256"),
      `${sha256}  ferry-agent-linux-x64.tar.gz\n`,
    );
    await writeFile(join(dir, "ferry-installer-init"), "#!/bin/sh\n");
    await publishToControlPlane({
      endpoint: cp.endpoint,
      region: cp.region,
      credentials: operator,
      caPem,
      packageFile: join(dir, "ferry-agent-linux-x64.tar.gz"),
      sha256File: join(dir, "ferry-agent-linux-x64.tar.gz.sha256"),
      installerFile: join(dir, "ferry-installer-init"),
      version: "0.0.0-doctor-test",
    });
    const present = await doctor();
    assert.equal(present.code, 0, JSON.stringify(present.flows));
    const published = present.flows[1]!;
    assert.equal(published.flow, "F1");
    assert.equal(published.ok, true);
    assert.match(
      published.observed,
      new RegExp(
        `/ferry/agent/package\\.sha256 is published on the control plane \\(sha256 ${sha256.slice(0, 16)}…\\)`,
      ),
    );
  });
});
