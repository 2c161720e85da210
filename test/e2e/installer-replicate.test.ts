/**
 * Issue 4's whole path in one test: the agent package published to a real
 * S3-compatible server (s3rver, TLS, virtual-hosted `*.s3.local` names pinned
 * with --resolve), ferry-installer-init fetched from the bucket and run by
 * dash with `--s3-endpoint`, registration with the embedded control plane
 * (`ferry up`'s), the unpacked package's own `bin/ferry agent run` replicating
 * an image to the replicator the control plane assigned, the server seen
 * CONTINUOUS through `aws mgn describe-source-servers` (the AWS CLI), and the
 * replica identical to the source. A fake /sys keeps this machine's disks out.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startEmbedded } from "../../src/cli/embedded.ts";
import { diskIdFor } from "../../src/agent/replication-driver.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { createCa, issueCertificate } from "../../src/lib/pki.ts";
import { buildAgentPackage } from "../../src/release/build.ts";
import { publishAgentPackage } from "../../src/release/publish.ts";
import { createScratch } from "../support/loop.ts";
import { sha256File, stagingImage } from "../support/data-plane.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const REGION = "us-east-1";
const BUCKET = `ferry-agent-${REGION}`;
const MiB = 1024 * 1024;
const pexec = promisify(execFile);

interface S3rverLike {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

/** Runs a command without blocking this process's event loop (the servers under test live here). */
function runAsync(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), 90_000);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const haveAws = spawnSync("aws", ["--version"]).status === 0;

test(
  "from the bucket's virtual host to an identical replica, seen through aws mgn describe-source-servers",
  { skip: !haveAws && "the AWS CLI (aws) is not installed", timeout: 240_000 },
  async () => {
    const scratch = await createScratch("ferry-installer-replicate-");
    const children: ChildProcess[] = [];
    try {
      const dist = join(scratch.dir, "dist");
      await buildAgentPackage({ root: ROOT, outDir: dist, withRuntime: false });

      const ca = await createCa("installer-replicate S3 CA");
      const leaf = await issueCertificate(ca, {
        commonName: "s3.local",
        altNames: ["s3.local", "*.s3.local"],
        usages: ["server"],
      });
      const s3CaFile = join(scratch.dir, "s3-ca.pem");
      await writeFile(s3CaFile, ca.certPem);
      const S3rver = createRequire(import.meta.url)("s3rver") as new (
        o: Record<string, unknown>,
      ) => S3rverLike;
      const s3 = new S3rver({
        address: "127.0.0.1",
        port: 0,
        silent: true,
        directory: join(scratch.dir, "s3"),
        key: leaf.keyPem,
        cert: leaf.certPem,
        serviceEndpoint: "local",
        configureBuckets: [{ name: BUCKET }],
      });
      const s3Port = (await s3.run()).port;
      scratch.defer(() => s3.close());
      const resolve = [`${BUCKET}.s3.local=127.0.0.1`];
      await publishAgentPackage({
        s3Endpoint: `s3.local:${s3Port}`,
        bucket: BUCKET,
        region: REGION,
        credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
        caPem: ca.certPem,
        resolve,
        files: [
          join(dist, "ferry-agent-linux-x64.tar.gz"),
          join(dist, "ferry-agent-linux-x64.tar.gz.sha256"),
          join(ROOT, "installer", "ferry-installer-init"),
        ],
        version: "test",
      });

      const up = await startEmbedded({
        dataDir: join(scratch.dir, "ferry"),
        listen: { host: "127.0.0.1", port: 0 },
        replicatorListen: { host: "127.0.0.1", port: 0 },
        region: REGION,
        reportIntervalSeconds: 1,
        log: silentLogger,
      });
      scratch.defer(() => up.close());
      const awsEnv = {
        PATH: process.env.PATH,
        HOME: scratch.dir,
        AWS_ACCESS_KEY_ID: up.accessKeyId,
        AWS_SECRET_ACCESS_KEY: up.secretAccessKey,
      };
      const aws = async (...args: string[]) =>
        JSON.parse(
          (
            await pexec(
              "aws",
              ["mgn", ...args, "--endpoint-url", up.endpoint, "--ca-bundle", up.caFile, "--region", REGION],
              { env: awsEnv },
            )
          ).stdout || "{}",
        ) as Record<string, unknown>;
      await aws("initialize-service");
      const installKey = await up.controlPlane.accessKeys.create("install", "installer-replicate test");

      // The source: its disk, no other disk visible, its machine identity.
      const disk = join(scratch.dir, "source-disk.img");
      await writeFile(
        disk,
        Buffer.concat([randomBytes(5 * MiB), Buffer.alloc(3 * MiB), randomBytes(4 * MiB)]),
      );
      const fakeRoot = join(scratch.dir, "fake-root");
      await mkdir(join(fakeRoot, "sys", "block"), { recursive: true });
      await mkdir(join(fakeRoot, "proc", "self"), { recursive: true });
      await writeFile(join(fakeRoot, "proc", "self", "mountinfo"), "");
      await writeFile(join(scratch.dir, "machine-id"), "abcdefabcdefabcdefabcdefabcdef01\n");
      const sourceEnv = {
        PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
        HOME: scratch.dir,
        FERRY_SYS_ROOT: fakeRoot,
        FERRY_MACHINE_ID_FILE: join(scratch.dir, "machine-id"),
      };

      // wget … ferry-installer-init from the bucket's virtual host, as on the source.
      const installer = join(scratch.dir, "ferry-installer-init");
      await pexec("curl", [
        "--fail",
        "--silent",
        "--show-error",
        "--cacert",
        s3CaFile,
        "--resolve",
        `${BUCKET}.s3.local:${s3Port}:127.0.0.1`,
        "--output",
        installer,
        `https://${BUCKET}.s3.local:${s3Port}/latest/linux/ferry-installer-init`,
      ]);
      const installDir = join(scratch.dir, "opt-ferry-agent");
      const install = await runAsync(
        "dash",
        [
          installer,
          "--region",
          REGION,
          "--endpoint",
          up.endpoint,
          "--ca-fingerprint",
          up.caFingerprint,
          "--aws-access-key-id",
          installKey.accessKeyId,
          "--aws-secret-access-key",
          installKey.secretAccessKey,
          "--s3-endpoint",
          `s3.local:${s3Port}`,
          "--s3-ca-file",
          s3CaFile,
          ...resolve.flatMap((r) => ["--resolve", r]),
          "--no-prompt",
          "--devices",
          disk,
          "--install-dir",
          installDir,
          "--no-systemd",
        ],
        sourceEnv,
      );
      assert.equal(install.code, 0, install.stderr);
      assert.match(install.stderr, new RegExp(`https://${BUCKET}\\.s3\\.local:${s3Port}/latest/linux/`));
      const id = /Source server ID: (s-[0-9a-zA-Z]{17})/.exec(install.stdout)?.[1];
      assert.ok(id, install.stdout);
      assert.match(install.stdout, /Source servers in the service: 1\n/);

      // The service as installed: the unpacked package's own CLI.
      const agent = spawn(
        join(installDir, "bin", "ferry"),
        ["agent", "run", "--state-dir", join(installDir, "state"), "--tracker", "scan"],
        { env: sourceEnv, stdio: ["ignore", "ignore", "pipe"] },
      );
      children.push(agent);
      let agentLog = "";
      agent.stderr!.on("data", (d: Buffer) => (agentLog += d.toString()));

      type Item = {
        sourceServerID: string;
        dataReplicationInfo?: { dataReplicationState?: string };
        lifeCycle?: { state?: string };
      };
      let seen: Item | undefined;
      const deadline = Date.now() + 150_000;
      while (!seen) {
        const out = (await aws("describe-source-servers", "--filters", `sourceServerIDs=${id}`)) as {
          items?: Item[];
        };
        const item: Item | undefined = out.items?.find((s) => s.sourceServerID === id);
        if (item?.dataReplicationInfo?.dataReplicationState === "CONTINUOUS") seen = item;
        else if (Date.now() > deadline)
          assert.fail(
            `not CONTINUOUS in time: ${JSON.stringify(item)}\nagent log:\n${agentLog.slice(-3000)}`,
          );
        else await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(seen.lifeCycle?.state, "READY_FOR_TEST");
      const replica = await stagingImage(up.replicatorDataDir, id, diskIdFor(disk));
      assert.equal(await sha256File(replica), await sha256File(disk), "the replica differs from the source");
    } finally {
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null) {
          c.kill("SIGTERM");
          await new Promise((r) => {
            const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
            c.once("exit", () => r(clearTimeout(t)));
          });
        }
      }
      await scratch.cleanup();
    }
  },
);
