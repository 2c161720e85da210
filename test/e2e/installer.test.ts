/**
 * From `wget` on the source to a registered server: the agent package is
 * published to a real S3-compatible server (s3rver, TLS on loopback, buckets
 * by virtual host under `*.s3.local`, names pinned with --resolve), and
 * ferry-installer-init (run by dash) downloads, verifies, unpacks and hands
 * over to the bundled CLI, which registers with a control plane started here.
 * Checked through DescribeSourceServers (@aws-sdk/client-mgn). Nothing touches
 * the real system: install dirs are temporary and no systemd unit is written.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { copyFile, mkdir, readFile, writeFile, readdir, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { Agent } from "node:https";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  DescribeSourceServersCommand,
  InitializeServiceCommand,
  MgnClient,
  type SourceServer,
} from "@aws-sdk/client-mgn";
import { createControlClient } from "../../src/agent/control-client.ts";
import { main } from "../../src/cli/main.ts";
import { startServer } from "../../src/control/index.ts";
import type { ServerHandle } from "../../src/control/index.ts";
import { FerryError } from "../../src/lib/errors.ts";
import { createLogger } from "../../src/lib/log.ts";
import { parseResolve } from "../../src/lib/static-resolve.ts";
import { createCa, issueCertificate } from "../../src/lib/pki.ts";
import { buildAgentPackage, type BuildResult } from "../../src/release/build.ts";
import { publishAgentPackage } from "../../src/release/publish.ts";
import { createImage, createScratch, haveRoot, type Scratch } from "../support/loop.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const INSTALLER_SOURCE = join(ROOT, "installer", "ferry-installer-init");
/** The installer as the source gets it: downloaded from the bucket (set in before()). */
let installer = "";
const REGION = "us-east-1";
const BUCKET = `ferry-agent-${REGION}`;
const TAMPERED_BUCKET = "ferry-agent-tampered";
/** A name only --resolve knows, held by the control plane's certificate. */
const CONTROL_NAME = "ferry-control.test";
const S3_KEY = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

interface S3rverLike {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverLike;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let scratch: Scratch;
let pkg: BuildResult;
let s3Port = 0;
let s3CaFile = "";
let server: ServerHandle;
let operator: MgnClient;
let installKey: { accessKeyId: string; secretAccessKey: string };
let image = "";
let machineIdFile = "";
/** The server of this test's (first) machine, registered by the first test. */
let firstServerId = "";

function s3Host(): string {
  return `s3.local:${s3Port}`;
}

const RESOLVE = [
  `${BUCKET}.s3.local=127.0.0.1`,
  `${TAMPERED_BUCKET}.s3.local=127.0.0.1`,
  "s3.local=127.0.0.1",
];

function mgnClient(credentials: { accessKeyId: string; secretAccessKey: string }): MgnClient {
  return new MgnClient({
    endpoint: server.url,
    region: REGION,
    credentials,
    requestHandler: { httpsAgent: new Agent({ ca: [caText] }) },
  });
}

/** The control plane's CA, read once it has started. */
let caText = "";

/** Runs the installer with dash (POSIX sh), the bundled CLI on this test's node. */
function runInstaller(
  args: string[],
  options: { timeoutMs?: number; onStderr?: (s: string) => void; machineIdFile?: string } = {},
) {
  const child = spawn("dash", [installer, ...args], {
    env: {
      PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: scratch.dir,
      FERRY_MACHINE_ID_FILE: options.machineIdFile ?? machineIdFile,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
    options.onStderr?.(stderr);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 40_000);
  const done = new Promise<Run>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { child, done };
}

function baseArgs(installDir: string): string[] {
  return [
    "--region",
    REGION,
    "--endpoint",
    server.url,
    "--aws-access-key-id",
    installKey.accessKeyId,
    "--aws-secret-access-key",
    installKey.secretAccessKey,
    "--s3-endpoint",
    s3Host(),
    "--s3-ca-file",
    s3CaFile,
    ...RESOLVE.flatMap((r) => ["--resolve", r]),
    "--no-prompt",
    "--devices",
    image,
    "--install-dir",
    installDir,
    "--no-systemd",
  ];
}

async function servers(): Promise<SourceServer[]> {
  const out = await operator.send(new DescribeSourceServersCommand({}));
  return out.items ?? [];
}

function wgetIsGnu(): boolean {
  try {
    return execFileSync("wget", ["--version"], { encoding: "utf8" }).includes("GNU Wget");
  } catch {
    return false;
  }
}

function serverIdIn(stdout: string): string {
  const m = /Source server ID: (s-[0-9a-zA-Z]{17})/.exec(stdout);
  assert.ok(m, `no source server ID in the installer's output:\n${stdout}`);
  return m[1]!;
}

describe("ferry-installer-init against s3rver and a control plane", { timeout: 300_000 }, () => {
  before(async () => {
    scratch = await createScratch("ferry-installer-");
    // The package without the Node runtime: the bundled CLI runs on this node.
    pkg = await buildAgentPackage({ root: ROOT, outDir: join(scratch.dir, "dist"), withRuntime: false });

    const ca = await createCa("installer test S3 CA");
    const leaf = await issueCertificate(ca, {
      commonName: "s3.local",
      altNames: ["s3.local", "*.s3.local"],
      usages: ["server"],
    });
    s3CaFile = join(scratch.dir, "s3-ca.pem");
    await writeFile(s3CaFile, ca.certPem);
    const require = createRequire(import.meta.url);
    const S3rver = require("s3rver") as S3rverCtor;
    const s3 = new S3rver({
      address: "127.0.0.1",
      port: 0,
      silent: true,
      directory: join(scratch.dir, "s3"),
      key: leaf.keyPem,
      cert: leaf.certPem,
      serviceEndpoint: "local",
      configureBuckets: [{ name: BUCKET }, { name: TAMPERED_BUCKET }],
    });
    s3Port = (await s3.run()).port;
    scratch.defer(() => s3.close());

    server = await startServer({
      dataDir: join(scratch.dir, "control"),
      port: 0,
      region: REGION,
      certNames: ["localhost", "127.0.0.1", CONTROL_NAME],
      logger: createLogger({ level: "error" }),
    });
    scratch.defer(() => server.close());
    caText = await readFile(server.caFile, "utf8");
    const op = await server.controlPlane.accessKeys.create("operator", "installer test");
    operator = mgnClient(op);
    scratch.defer(async () => operator.destroy());
    await operator.send(new InitializeServiceCommand({}));
    installKey = await server.controlPlane.accessKeys.create("install", "installer test");

    image = await createImage(scratch, "disk.img", 16 * 1024 * 1024);
    machineIdFile = join(scratch.dir, "machine-id");
    await writeFile(machineIdFile, "0123456789abcdef0123456789abcdef\n");

    // Published through the CLI, virtual-hosted, as an operator would.
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const code = await main(
      [
        "release",
        "publish",
        "--s3-endpoint",
        s3Host(),
        "--region",
        REGION,
        "--package-dir",
        join(scratch.dir, "dist"),
        "--aws-access-key-id",
        S3_KEY.accessKeyId,
        "--aws-secret-access-key",
        S3_KEY.secretAccessKey,
        "--ca-file",
        s3CaFile,
        ...RESOLVE.flatMap((r) => ["--resolve", r]),
        "--json",
      ],
      { stdout: out, stderr: out, isTTY: false, env: {}, signal: new AbortController().signal },
    );
    assert.equal(code, 0, text);
    const published = JSON.parse(text) as { objects: { key: string }[] };
    assert.ok(published.objects.some((o) => o.key === "latest/linux/ferry-agent-linux-x64.tar.gz"));
    assert.ok(
      published.objects.some((o) => o.key === `${pkg.version}/linux/ferry-agent-linux-x64.tar.gz.sha256`),
    );
    // As on the source: wget the installer from the bucket's virtual host.
    installer = join(scratch.dir, "ferry-installer-init");
    const url = `https://${BUCKET}.s3.local:${s3Port}/latest/linux/ferry-installer-init`;
    const wget = spawn("curl", [
      "--fail",
      "--silent",
      "--show-error",
      "--cacert",
      s3CaFile,
      "--resolve",
      `${BUCKET}.s3.local:${s3Port}:127.0.0.1`,
      "--output",
      installer,
      url,
    ]);
    let wgetErr = "";
    wget.stderr.on("data", (c: Buffer) => (wgetErr += c.toString()));
    assert.equal(await new Promise((r) => wget.on("close", r)), 0, `${url}: ${wgetErr}`);
    assert.equal(await readFile(installer, "utf8"), await readFile(INSTALLER_SOURCE, "utf8"));
  });

  after(async () => {
    await scratch?.cleanup();
  });

  test("virtual-hosted download: hash checked, unpacked, registered, visible in DescribeSourceServers", async () => {
    const installDir = join(scratch.dir, "install-a");
    const r = await runInstaller([
      ...baseArgs(installDir),
      "--ca-file",
      server.caFile,
      "--tags",
      "app=shop",
      "owner=O'Brien & co",
      "--user-provided-id",
      "web-01",
    ]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`https://${BUCKET}\\.s3\\.local:${s3Port}/latest/linux/`));
    assert.ok(r.stderr.includes(`Package verified: sha256 ${pkg.sha256}`), r.stderr);
    assert.ok(existsSync(join(installDir, "bin", "ferry")));
    const id = serverIdIn(r.stdout);
    firstServerId = id;
    const all = await servers();
    const s = all.find((x) => x.sourceServerID === id);
    assert.ok(s, `${id} not in DescribeSourceServers`);
    // The summary says how many servers the service holds (MGN's installer prints its quota use).
    assert.ok(
      r.stdout.includes(`Source servers in the service: ${all.filter((x) => !x.isArchived).length}\n`),
      r.stdout,
    );
    assert.deepEqual(s.tags, { app: "shop", owner: "O'Brien & co" });
    assert.equal(s.userProvidedID, "web-01");
    const disks = (s.sourceProperties?.disks ?? []).map((d) => d.deviceName);
    assert.ok(disks.includes(image), `the chosen image is not among the disks: ${disks.join(", ")}`);
    const config = JSON.parse(await readFile(join(installDir, "state", "agent.json"), "utf8")) as {
      sourceServerID: string;
      dataPlane?: { keyFile: string; certFile: string; caFile: string };
    };
    assert.equal(config.sourceServerID, id);
    // The data-plane identity: a key made on the source, certified for this server only.
    assert.ok(config.dataPlane, "no data-plane certificate was issued");
    const cert = new X509Certificate(await readFile(config.dataPlane.certFile));
    assert.match(cert.subject, new RegExp(`CN=.*${id}`), "the certificate is not bound to this server");
    assert.ok(cert.checkPrivateKey(createPrivateKey(await readFile(config.dataPlane.keyFile))));
    assert.ok(cert.verify(new X509Certificate(await readFile(config.dataPlane.caFile)).publicKey));
    assert.equal((await stat(config.dataPlane.keyFile)).mode & 0o777, 0o600);
    assert.equal((await stat(join(installDir, "state"))).mode & 0o777, 0o700);
  });

  test("path style with a pinned CA: the same machine registers again as the same server", async () => {
    const before = await servers();
    const r = await runInstaller([
      ...baseArgs(join(scratch.dir, "install-b")),
      "--path-style",
      "--ca-fingerprint",
      server.caFingerprint,
    ]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`https://s3\\.local:${s3Port}/${BUCKET}/latest/linux/`));
    const id = serverIdIn(r.stdout);
    const afterRun = await servers();
    assert.equal(afterRun.length, before.length, "a second install of the same machine added a server");
    assert.ok(before.some((s) => s.sourceServerID === id));
  });

  test(
    "wget with --resolve in a private mount namespace",
    { skip: !haveRoot() && "needs root" },
    async (t) => {
      const probe = spawn("unshare", ["--mount", "true"]);
      const ok = await new Promise<boolean>((resolve) => {
        probe.on("error", () => resolve(false));
        probe.on("close", (code) => resolve(code === 0));
      });
      if (!ok) return t.skip("unshare --mount is not available here");
      const r = await runInstaller([
        ...baseArgs(join(scratch.dir, "install-wget")),
        "--downloader",
        "wget",
        "--ca-file",
        server.caFile,
      ]).done;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(`Package verified: sha256 ${pkg.sha256}`), r.stderr);
    },
  );

  test("another machine is another server; --no-replication registers it stopped", async () => {
    const otherMachine = join(scratch.dir, "machine-id-2");
    await writeFile(otherMachine, "fedcba9876543210fedcba9876543210\n");
    const before = await servers();
    const r = await runInstaller(
      [...baseArgs(join(scratch.dir, "install-other")), "--ca-file", server.caFile, "--no-replication"],
      { machineIdFile: otherMachine },
    ).done;
    assert.equal(r.code, 0, r.stderr);
    const id = serverIdIn(r.stdout);
    assert.ok(!before.some((s) => s.sourceServerID === id), "the other machine got an existing server's ID");
    assert.ok(r.stdout.includes(`Source servers in the service: ${before.length + 1}\n`), r.stdout);
    const s = (await servers()).find((x) => x.sourceServerID === id);
    assert.equal(s?.lifeCycle?.state, "STOPPED");
  });

  test("--force-volumes replicates exactly --devices (no root disk added); --json; --uninstall, then the same server again", async () => {
    const machine = join(scratch.dir, "machine-id-force");
    await writeFile(machine, "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0\n");
    const r = await runInstaller(
      [
        ...baseArgs(join(scratch.dir, "install-force")),
        "--ca-file",
        server.caFile,
        "--force-volumes",
        "--json",
      ],
      { machineIdFile: machine },
    ).done;
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      sourceServerID: string;
      disks: { deviceName: string }[];
      sourceServerCount: number;
    };
    assert.deepEqual(
      result.disks.map((d) => d.deviceName),
      [image],
    );
    const s = (await servers()).find((x) => x.sourceServerID === result.sourceServerID);
    assert.deepEqual(
      (s?.sourceProperties?.disks ?? []).map((d) => d.deviceName),
      [image],
    );
    assert.equal(result.sourceServerCount, (await servers()).filter((x) => !x.isArchived).length);

    // --uninstall removes the agent; installing again is the same server, not a new one.
    const installDir = join(scratch.dir, "install-force");
    const refused = await runInstaller(["--uninstall", "--install-dir", scratch.dir]).done;
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /does not hold a Ferry agent/);
    const gone = await runInstaller(["--uninstall", "--install-dir", installDir]).done;
    assert.equal(gone.code, 0, gone.stderr);
    assert.ok(!existsSync(installDir), "the install dir is still there");
    const count = (await servers()).length;
    const again = await runInstaller(
      [...baseArgs(installDir), "--ca-file", server.caFile, "--force-volumes", "--json"],
      { machineIdFile: machine },
    ).done;
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      (JSON.parse(again.stdout) as { sourceServerID: string }).sourceServerID,
      result.sourceServerID,
    );
    assert.equal((await servers()).length, count);
  });

  test("a tampered package is refused before anything is installed", async () => {
    const dir = join(scratch.dir, "tampered");
    await mkdir(dir, { recursive: true });
    const bytes = await readFile(pkg.file);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    await writeFile(join(dir, "ferry-agent-linux-x64.tar.gz"), bytes);
    await copyFile(pkg.sha256File, join(dir, "ferry-agent-linux-x64.tar.gz.sha256"));
    await publishAgentPackage({
      s3Endpoint: s3Host(),
      bucket: TAMPERED_BUCKET,
      region: REGION,
      // Published path style, fetched virtual-hosted: the same objects either way.
      pathStyle: true,
      credentials: S3_KEY,
      caPem: await readFile(s3CaFile, "utf8"),
      resolve: RESOLVE,
      files: [join(dir, "ferry-agent-linux-x64.tar.gz"), join(dir, "ferry-agent-linux-x64.tar.gz.sha256")],
      version: pkg.version,
    });
    const count = (await servers()).length;
    const installDir = join(scratch.dir, "install-tampered");
    const r = await runInstaller([
      ...baseArgs(installDir),
      "--bucket",
      TAMPERED_BUCKET,
      "--ca-file",
      server.caFile,
    ]).done;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /tampered/);
    assert.ok(r.stderr.includes(pkg.sha256), "the message names the expected hash");
    assert.ok(!existsSync(installDir) || (await readdir(installDir)).length === 0, "something was installed");
    assert.equal((await servers()).length, count);
  });

  test("a wrong CA fingerprint is refused and nothing registers", async () => {
    const count = (await servers()).length;
    const wrong = (await createCa("not the control plane")).fingerprint;
    const r = await runInstaller([
      ...baseArgs(join(scratch.dir, "install-wrong-ca")),
      "--ca-fingerprint",
      wrong,
    ]).done;
    // The installer's network check (ferry doctor) finds it before the agent would (exit 8).
    assert.equal(r.code, 8, r.stderr);
    assert.match(r.stderr, /CA_FINGERPRINT_MISMATCH/);
    assert.match(r.stderr, /nothing was registered/);
    assert.equal((await servers()).length, count);
  });

  describe("without --s3-endpoint: the package comes from the control plane", () => {
    const controlDir = () => join(scratch.dir, "control", "agent-package");
    const fromControl = (installDir: string, trust: string[], key = installKey) => [
      "--region",
      REGION,
      "--endpoint",
      server.url,
      "--aws-access-key-id",
      key.accessKeyId,
      "--aws-secret-access-key",
      key.secretAccessKey,
      ...trust,
      "--install-dir",
      installDir,
      "--no-prompt",
      "--devices",
      image,
      "--no-systemd",
    ];
    const machine = () => join(scratch.dir, "machine-id-control");
    const nothingIn = async (dir: string) => !existsSync(dir) || (await readdir(dir)).length === 0;

    test("nothing published yet: the installer says what to run, installs nothing", async () => {
      await writeFile(machine(), "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\n");
      const installDir = join(scratch.dir, "install-control-none");
      const r = await runInstaller(fromControl(installDir, ["--ca-file", server.caFile]), {
        machineIdFile: machine(),
      }).done;
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /404/);
      assert.ok(r.stderr.includes(`ferry release publish --endpoint ${server.url}`), r.stderr);
      assert.ok(await nothingIn(installDir));
    });

    test("ferry release publish --endpoint, then a pinned CA, a signed download, verified, registered", async () => {
      const op = await server.controlPlane.accessKeys.create("operator", "publisher");
      const out = new PassThrough();
      let text = "";
      out.on("data", (c: Buffer) => (text += c.toString()));
      const publish = (key: { accessKeyId: string; secretAccessKey: string }) =>
        main(
          [
            "release",
            "publish",
            "--endpoint",
            server.url,
            "--ca-fingerprint",
            server.caFingerprint,
            "--region",
            REGION,
            "--package-dir",
            join(scratch.dir, "dist"),
            "--json",
          ],
          {
            stdout: out,
            stderr: out,
            isTTY: false,
            env: { AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey },
            signal: new AbortController().signal,
          },
        );
      // An install key may download but not publish.
      assert.equal(await publish(installKey), 1, text);
      assert.match(text, /AccessDeniedException/);
      assert.ok(!existsSync(join(controlDir(), "ferry-agent-linux-x64.tar.gz")));
      text = "";
      assert.equal(await publish(op), 0, text);
      const published = JSON.parse(text) as { objects: { key: string }[] };
      assert.deepEqual(
        published.objects.map((o) => o.key),
        ["/ferry/agent/package", "/ferry/agent/ferry-installer-init", "/ferry/agent/package.sha256"],
      );
      assert.deepEqual(
        await readFile(join(controlDir(), "ferry-agent-linux-x64.tar.gz")),
        await readFile(pkg.file),
      );

      const installDir = join(scratch.dir, "install-from-control");
      const wrong = await runInstaller(
        fromControl(installDir, ["--ca-fingerprint", (await createCa("another CA")).fingerprint]),
        { machineIdFile: machine() },
      ).done;
      assert.equal(wrong.code, 7, wrong.stderr);
      assert.match(wrong.stderr, /no certificate with the pinned CA fingerprint/);
      assert.doesNotMatch(wrong.stderr, /Downloading/);
      assert.ok(await nothingIn(installDir));

      const before = (await servers()).length;
      const r = await runInstaller(
        fromControl(installDir, ["--ca-fingerprint", server.caFingerprint.toLowerCase()]),
        { machineIdFile: machine() },
      ).done;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.stderr.includes(`Downloading the agent package from ${server.url}/ferry/agent/package`),
        r.stderr,
      );
      assert.ok(r.stderr.includes(`Package verified: sha256 ${pkg.sha256}`), r.stderr);
      const id = serverIdIn(r.stdout);
      assert.ok((await servers()).some((s) => s.sourceServerID === id));
      assert.ok(r.stdout.includes(`Source servers in the service: ${before + 1}\n`), r.stdout);
    });

    test("the installer script itself is fetched from the control plane without a key", async () => {
      const target = join(scratch.dir, "installer-from-control");
      const curl = spawn("curl", [
        "--fail",
        "--silent",
        "--show-error",
        "--cacert",
        server.caFile,
        "--output",
        target,
        `${server.url}/ferry/agent/ferry-installer-init`,
      ]);
      let err = "";
      curl.stderr.on("data", (c: Buffer) => (err += c.toString()));
      assert.equal(await new Promise((r) => curl.on("close", r)), 0, err);
      assert.equal(await readFile(target, "utf8"), await readFile(INSTALLER_SOURCE, "utf8"));
    });

    test("a wrong secret, a wrong CA file: refused before anything is downloaded", async () => {
      const installDir = join(scratch.dir, "install-control-refused");
      const badKey = await runInstaller(
        fromControl(installDir, ["--ca-file", server.caFile], { ...installKey, secretAccessKey: "wrong" }),
        { machineIdFile: machine() },
      ).done;
      assert.equal(badKey.code, 3, badKey.stderr);
      assert.match(badKey.stderr, /403/);
      const otherCa = join(scratch.dir, "other-ca.pem");
      await writeFile(otherCa, (await createCa("not the control plane")).certPem);
      const badCa = await runInstaller(fromControl(installDir, ["--ca-file", otherCa]), {
        machineIdFile: machine(),
      }).done;
      assert.equal(badCa.code, 3, badCa.stderr);
      assert.match(badCa.stderr, /certificate/i);
      assert.ok(await nothingIn(installDir));
    });

    test(
      "wget: the signed download works the same",
      { skip: !wgetIsGnu() && "GNU wget not installed" },
      async () => {
        const r = await runInstaller(
          [
            ...fromControl(join(scratch.dir, "install-control-wget"), ["--ca-file", server.caFile]),
            "--downloader",
            "wget",
          ],
          { machineIdFile: machine() },
        ).done;
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stderr.includes(`Package verified: sha256 ${pkg.sha256}`), r.stderr);
      },
    );

    test("a package changed on the control plane is refused before anything is installed", async () => {
      const file = join(controlDir(), "ferry-agent-linux-x64.tar.gz");
      const good = await readFile(file);
      const bad = Buffer.from(good);
      bad.writeUInt8(bad.readUInt8(bad.length >> 1) ^ 0xff, bad.length >> 1);
      await writeFile(file, bad);
      try {
        const count = (await servers()).length;
        const installDir = join(scratch.dir, "install-control-tampered");
        const r = await runInstaller(fromControl(installDir, ["--ca-file", server.caFile]), {
          machineIdFile: machine(),
        }).done;
        assert.equal(r.code, 4, r.stderr);
        assert.match(r.stderr, /tampered/);
        assert.ok(await nothingIn(installDir));
        assert.equal((await servers()).length, count);
      } finally {
        await writeFile(file, good);
      }
    });
  });

  test("an install key and an agent key cannot call operator operations", async () => {
    const installClient = mgnClient(installKey);
    await assert.rejects(installClient.send(new DescribeSourceServersCommand({})), {
      name: "AccessDeniedException",
    });
    installClient.destroy();
    // Registered in process through the CLI: its fresh agent key is the valid one.
    const stateDir = join(scratch.dir, "state-cli");
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const code = await main(
      [
        "agent",
        "install",
        "--endpoint",
        server.url,
        "--region",
        REGION,
        "--ca-file",
        server.caFile,
        "--no-prompt",
        "--devices",
        image,
        "--state-dir",
        stateDir,
        "--no-systemd",
        "--json",
      ],
      {
        stdout: out,
        stderr: out,
        isTTY: false,
        env: {
          AWS_ACCESS_KEY_ID: installKey.accessKeyId,
          AWS_SECRET_ACCESS_KEY: installKey.secretAccessKey,
          FERRY_MACHINE_ID_FILE: machineIdFile,
        },
        signal: new AbortController().signal,
      },
    );
    assert.equal(code, 0, text);
    const result = JSON.parse(text) as { sourceServerID: string; service: string };
    assert.equal(result.service, "none");
    const config = JSON.parse(await readFile(join(stateDir, "agent.json"), "utf8")) as {
      sourceServerID: string;
      agentCredentials: { accessKeyId: string; secretAccessKey: string };
    };
    assert.equal(config.sourceServerID, result.sourceServerID);
    const agentClient = mgnClient(config.agentCredentials);
    await assert.rejects(agentClient.send(new DescribeSourceServersCommand({})), {
      name: "AccessDeniedException",
    });
    agentClient.destroy();
    // Each registration replaces the agent key: the first install's is no longer accepted.
    const first = JSON.parse(
      await readFile(join(scratch.dir, "install-a", "state", "agent.json"), "utf8"),
    ) as {
      agentCredentials: { accessKeyId: string; secretAccessKey: string };
    };
    const stale = mgnClient(first.agentCredentials);
    await assert.rejects(stale.send(new DescribeSourceServersCommand({})), {
      name: "UnrecognizedClientException",
    });
    stale.destroy();
  });

  test("the agent's client: --resolve names, and each failure as its own error", async () => {
    const caPem = caText;
    const port = new URL(server.url).port;
    const byName = createControlClient({
      endpoint: `https://${CONTROL_NAME}:${port}`,
      region: REGION,
      credentials: installKey,
      caPem,
      hosts: parseResolve([`${CONTROL_NAME}=127.0.0.1`]),
    });
    const reg = await byName.register({
      identity: "client-test-machine",
      sourceProperties: { identificationHints: { hostname: "client-test" } },
    });
    assert.match(reg.sourceServerID, /^s-[0-9a-zA-Z]{17}$/);
    byName.close();

    const cases: [Parameters<typeof createControlClient>[0], string, RegExp][] = [
      [
        {
          endpoint: server.url,
          region: REGION,
          credentials: { ...installKey, secretAccessKey: "wrong" },
          caPem,
        },
        "CONTROL_PLANE_REFUSED",
        /InvalidSignatureException/,
      ],
      [{ endpoint: server.url, region: REGION, credentials: installKey }, "CONTROL_PLANE_TLS", /--ca-file/],
      [
        { endpoint: "https://127.0.0.1:1", region: REGION, credentials: installKey, caPem },
        "CONTROL_PLANE_UNREACHABLE",
        /cannot reach/,
      ],
    ];
    for (const [options, code, message] of cases) {
      const client = createControlClient(options);
      await assert.rejects(
        client.register({ identity: "client-test-machine", sourceProperties: {} }),
        (err: unknown) => err instanceof FerryError && err.code === code && message.test(err.message),
        code,
      );
      client.close();
    }

    // Agent A's key cannot report for server B.
    const asAgent = createControlClient({
      endpoint: server.url,
      region: REGION,
      credentials: reg.agentCredentials,
      caPem,
    });
    const ok = await asAgent.report({
      sourceServerID: reg.sourceServerID,
      dataReplicationState: "INITIATING",
    });
    assert.equal(ok.sourceServerID, reg.sourceServerID);
    await assert.rejects(
      asAgent.report({ sourceServerID: firstServerId, dataReplicationState: "INITIATING" }),
      (err: unknown) => err instanceof FerryError && /AccessDeniedException/.test(err.message),
    );
    asAgent.close();
  });

  test(
    "without --devices the agent asks on the terminal; the root disk is added to the answer",
    {
      skip: !existsSync("/usr/bin/script") && "script (util-linux) not installed",
    },
    async () => {
      const machine = join(scratch.dir, "machine-id-prompt");
      await writeFile(machine, "00000000111111112222222233333333\n");
      const stateDir = join(scratch.dir, "state-prompt");
      const command = [
        join(ROOT, "bin", "ferry"),
        "agent",
        "install",
        "--endpoint",
        server.url,
        "--region",
        REGION,
        "--ca-file",
        server.caFile,
        "--state-dir",
        stateDir,
        "--no-systemd",
      ].join(" ");
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        env: {
          PATH: `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
          HOME: scratch.dir,
          TERM: "dumb",
          AWS_ACCESS_KEY_ID: installKey.accessKeyId,
          AWS_SECRET_ACCESS_KEY: installKey.secretAccessKey,
          FERRY_MACHINE_ID_FILE: machine,
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let output = "";
      let answered = false;
      child.stdout.on("data", (c: Buffer) => {
        output += c.toString();
        if (!answered && output.includes("press Enter for all disks")) {
          answered = true;
          child.stdin.write(`${image}\r`);
        }
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
      clearTimeout(timer);
      assert.equal(code, 0, output);
      assert.match(output, /Disks on this server:/);
      const id = serverIdIn(output);
      const s = (await servers()).find((x) => x.sourceServerID === id);
      const disks = (s?.sourceProperties?.disks ?? []).map((d) => d.deviceName);
      assert.ok(disks.includes(image), disks.join(", "));
      const { listDisks } = await import("../../src/agent/disks.ts");
      const root = (await listDisks()).find((d) => d.root);
      if (root)
        assert.ok(
          disks.includes(root.deviceName),
          `root disk ${root.deviceName} missing: ${disks.join(", ")}`,
        );
    },
  );

  test("--foreground runs the agent, which reports until stopped", async () => {
    const installDir = join(scratch.dir, "install-fg");
    const run = runInstaller([...baseArgs(installDir), "--ca-file", server.caFile, "--foreground"], {
      timeoutMs: 30_000,
    });
    let seen: string | undefined;
    for (let i = 0; i < 100 && !seen; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const s = (await servers()).find((x) => x.sourceServerID === firstServerId);
      const lastSeen = s?.lifeCycle?.lastSeenByServiceDateTime;
      const registered = existsSync(join(installDir, "state", "agent.json"));
      if (registered && lastSeen) {
        const disks = s?.dataReplicationInfo?.replicatedDisks ?? [];
        if (disks.some((d) => d.deviceName === image)) seen = lastSeen;
      }
    }
    run.child.kill("SIGTERM");
    const r = await run.done;
    assert.ok(seen, `the agent never reported:\n${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
  });
});
