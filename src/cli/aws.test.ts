import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "./main.ts";
import type { CliContext } from "./context.ts";
import { startFakeAws } from "../aws/collect/fake-aws.ts";
import { referenceSetup } from "../aws/corpus/reference.ts";

const FIXTURES = new URL("../aws/fixtures/", import.meta.url).pathname;
const SRC = ["--source-subnet", "subnet-0aaa0000000000011", "--source-group", "sg-0aaa0000000000061"];

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString()));
  stderr.on("data", (c: Buffer) => (err += c.toString()));
  const ctx: CliContext = {
    stdout,
    stderr,
    isTTY: false,
    env: {},
    signal: new AbortController().signal,
  };
  const code = await main(argv, ctx);
  return { code, out, err, exitCode: ctx.exitCode };
}

test("check on the reference: one ✓ line per flow and the values for the source", async () => {
  const dir = join(FIXTURES, "reference");
  const r = await run(["aws", "check", dir, ...SRC, "--source-hosts", join(dir, "source-hosts")]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.exitCode ?? 0, 0);
  const flowLines = r.out.split("\n").filter((l) => /^[✓✗] F\d/.test(l));
  assert.deepEqual(
    flowLines.map((l) => l.slice(0, 4)),
    ["✓ F1", "✓ F2", "✓ F3", "✓ F4", "✓ F5", "✓ F6", "✓ F7"],
  );
  assert.match(
    r.out,
    /--s3-endpoint\s+vpce-0ddd0000000000093-0ddd0000\.s3\.us-east-1\.vpce\.amazonaws\.com\n/,
  );
  assert.match(
    r.out,
    /installer URL\s+https:\/\/aws-application-migration-service-us-east-1\.bucket\.vpce-0ddd0000000000093-0ddd0000\.s3\.us-east-1\.vpce\.amazonaws\.com\/latest\/linux\/aws-replication-installer-init\.py/,
  );
  assert.match(r.out, /10\.0\.2\.10 mgn\.us-east-1\.amazonaws\.com/);
  assert.match(r.out, /All 7 flows open\./);
});

test("check --json has exactly flows and derived, and a blocked flow sets exit code 1", async () => {
  const dir = join(FIXTURES, "nacl-no-ephemeral-return");
  const r = await run(["aws", "check", dir, ...SRC, "--source-hosts", join(dir, "source-hosts"), "--json"]);
  assert.equal(r.code, 1);
  const doc = JSON.parse(r.out) as {
    flows: { flow: string; ok: boolean; findings: Record<string, unknown>[] }[];
    derived: Record<string, unknown>;
  };
  assert.deepEqual(Object.keys(doc), ["flows", "derived"]);
  assert.deepEqual(Object.keys(doc.derived), ["s3Endpoint", "installerUrl", "endpoint", "hostsLines"]);
  assert.deepEqual(
    doc.flows.map((f) => `${f.flow}:${f.ok}`),
    ["F1:false", "F2:false", "F3:true", "F4:true", "F5:true", "F6:true", "F7:false"],
  );
  const finding = doc.flows[6]!.findings[0]!;
  assert.deepEqual(Object.keys(finding), ["rule", "code", "resources", "found", "fix"]);
  assert.equal(finding.code, "SUBNET_ACL_RESTRICTION");
  assert.match(
    String(finding.fix),
    /create-network-acl-entry --network-acl-id acl-0bbb0000000000082 --egress .*--port-range From=1024,To=65535 --cidr-block 10\.1\.1\.0\/24/,
  );
});

test("check --from-error focuses on the flow the MGN step points at", async () => {
  const dir = join(FIXTURES, "endpoint-sg-no-replication-subnet");
  const r = await run([
    "aws",
    "check",
    dir,
    ...SRC,
    "--from-error",
    "FAILED_TO_AUTHENTICATE_WITH_SERVICE",
    "--json",
  ]);
  const doc = JSON.parse(r.out) as { flows: { flow: string; ok: boolean }[] };
  assert.deepEqual(
    doc.flows.map((f) => `${f.flow}:${f.ok}`),
    ["F4:false"],
  );
  const text = await run([
    "aws",
    "check",
    dir,
    ...SRC,
    "--from-error",
    "CONNECT_AGENT_TO_REPLICATION_SERVER",
  ]);
  assert.match(text.out, /CONNECT_AGENT_TO_REPLICATION_SERVER points at F7/);
  const bad = await run(["aws", "check", dir, ...SRC, "--from-error", "SOMETHING_ELSE"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--from-error "SOMETHING_ELSE" names no MGN initiation step/);
});

test("check --html writes a self-contained report with the diagram in green and red", async () => {
  const out = await mkdtemp(join(tmpdir(), "ferry-aws-html-"));
  try {
    const dir = join(FIXTURES, "staging-subnet-main-table");
    const file = join(out, "report.html");
    const r = await run([
      "aws",
      "check",
      dir,
      ...SRC,
      "--source-hosts",
      join(dir, "source-hosts"),
      "--html",
      file,
    ]);
    assert.equal(r.exitCode, 1);
    const html = await readFile(file, "utf8");
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /<(script|link)\b|src="http/);
    assert.match(html, /<svg [^>]*viewBox/);
    assert.match(html, /data-flow="F6" data-ok="false"><line [^>]*stroke="#cf222e"/);
    assert.match(html, /data-flow="F1" data-ok="true"><line [^>]*stroke="#1a7f37"/);
    assert.match(html, /VPCE_GATEWAY_ROUTE_TABLE_NOT_ASSOCIATED/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("a directory that is not AWS CLI output fails with the file and field", async () => {
  const r = await run([
    "aws",
    "check",
    join(FIXTURES, "reference", "..", ".."),
    "--source-cidr",
    "10.1.0.0/16",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^ferry: .*describe-vpcs\.json is missing; run `ferry aws collect`/);
  const noSource = await run(["aws", "check", join(FIXTURES, "reference")]);
  assert.equal(noSource.code, 1);
  assert.match(noSource.err, /pass --source-cidr <cidr> or --source-subnet <subnet-id>/);
});

test("plan prints a CloudFormation template; --output writes it", async () => {
  const args = [
    "aws",
    "plan",
    "--staging-vpc",
    "vpc-0bbb0000000000002",
    "--vpc-cidr",
    "10.0.0.0/16",
    "--staging-subnet",
    "subnet-0bbb0000000000021",
    "--subnet-cidr",
    "10.0.1.0/24",
    "--route-table",
    "rtb-0bbb0000000000041",
    "--availability-zone",
    "eu-west-1b",
    "--source-cidr",
    "192.168.0.0/20",
    "--source-cidr",
    "192.168.64.0/20",
  ];
  const r = await run(args);
  assert.equal(r.code, 0, r.err);
  const template = JSON.parse(r.out) as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const types = Object.values(template.Resources)
    .map((x) => x.Type)
    .sort();
  assert.deepEqual(types.filter((t) => t === "AWS::EC2::VPCEndpoint").length, 4);
  assert.ok(types.includes("AWS::MGN::ReplicationConfigurationTemplate"));
  assert.ok(!types.includes("AWS::Route53Resolver::ResolverEndpoint"));
  assert.ok(
    Object.values(template.Resources).some((x) => x.Properties.ServiceName === "com.amazonaws.eu-west-1.mgn"),
  );
  assert.ok(!("Parameters" in template), "no bootstrap parameters");
  const bad = await run([...args.slice(0, 5), "10.0.0.0/33", ...args.slice(6)]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--vpc-cidr 10\.0\.0\.0\/33: not an IPv4 CIDR/);
  const out = await mkdtemp(join(tmpdir(), "ferry-aws-plan-"));
  try {
    const file = join(out, "staging.json");
    const written = await run([...args, "--dns", "resolver", "--output", file]);
    assert.equal(written.out, "");
    const fromFile = JSON.parse(await readFile(file, "utf8")) as typeof template;
    assert.ok(
      Object.values(fromFile.Resources).some((x) => x.Type === "AWS::Route53Resolver::ResolverEndpoint"),
    );
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("collect then check: the files from the SDK make a green check", async () => {
  const aws = await startFakeAws(referenceSetup());
  const out = await mkdtemp(join(tmpdir(), "ferry-aws-collect-cli-"));
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID = "AKIDEXAMPLE";
  process.env.AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  try {
    const dir = join(out, "mgn-net");
    const c = await run([
      "aws",
      "collect",
      "--out",
      dir,
      "--region",
      "us-east-1",
      "--endpoint-url",
      aws.url,
      "--vpc",
      "vpc-0bbb0000000000002",
      "--vpc",
      "vpc-0aaa0000000000001",
      "--json",
    ]);
    assert.equal(c.code, 0, c.err);
    const { files } = JSON.parse(c.out) as { files: string[] };
    assert.ok(files.includes("describe-vpc-attribute-vpc-0bbb0000000000002-enableDnsHostnames.json"));
    const r = await run(["aws", "check", dir, ...SRC, "--json"]);
    assert.equal(r.exitCode ?? 0, 0, r.out);
    const doc = JSON.parse(r.out) as { flows: { ok: boolean }[] };
    assert.ok(doc.flows.every((f) => f.ok));
  } finally {
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    await aws.close();
    await rm(out, { recursive: true, force: true });
  }
});

test("plan --check-against deploys the plan on paper into a collected network and checks it", async () => {
  const base = join(FIXTURES, "plan-base");
  const plan = [
    "aws",
    "plan",
    "--staging-vpc",
    "vpc-0bbb0000000000002",
    "--vpc-cidr",
    "10.0.0.0/16",
    "--staging-subnet",
    "subnet-0bbb0000000000021",
    "--subnet-cidr",
    "10.0.1.0/24",
    "--route-table",
    "rtb-0bbb0000000000041",
    "--availability-zone",
    "us-east-1a",
    "--check-against",
    base,
    ...SRC,
  ];
  const ok = await run([...plan, "--source-cidr", "10.1.0.0/16", "--dns", "resolver"]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /All 7 flows open\./);
  // A plan for the wrong source network leaves the source's flows shut.
  const wrong = await run([...plan, "--source-cidr", "192.168.0.0/16", "--dns", "resolver", "--json"]);
  assert.equal(wrong.code, 1);
  const doc = JSON.parse(wrong.out) as { flows: { flow: string; ok: boolean }[] };
  assert.deepEqual(
    doc.flows.filter((f) => !f.ok).map((f) => f.flow),
    ["F1", "F2", "F3", "F7"],
  );
});
