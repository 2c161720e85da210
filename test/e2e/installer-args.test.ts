/**
 * ferry-installer-init's own checks, under every POSIX shell found here
 * (dash, busybox sh, bash in POSIX mode): usage errors exit 2 before any
 * download, an unreachable bucket exits 3 with nothing installed, and the
 * script passes shellcheck when it is installed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";

const INSTALLER = fileURLToPath(new URL("../../installer/ferry-installer-init", import.meta.url));

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

const SHELLS: [string, string[]][] = [
  ["dash", ["dash"]],
  ["busybox sh", ["busybox", "sh"]],
  ["bash --posix", ["bash", "--posix"]],
];

function runWith(
  shell: string[],
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(shell[0]!, [...shell.slice(1), INSTALLER, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

const BASE = [
  "--region",
  "us-east-1",
  "--endpoint",
  "https://127.0.0.1:1",
  "--aws-access-key-id",
  "FKIN",
  "--aws-secret-access-key",
  "x",
];

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

for (const [name, shell] of SHELLS) {
  describe(
    `ferry-installer-init under ${name}`,
    { skip: !have(shell[0]!) && `${shell[0]} not installed` },
    () => {
      test("--help prints every flag and exits 0", async () => {
        const r = await runWith(shell, ["--help"]);
        assert.equal(r.code, 0, r.stderr);
        for (const flag of [
          "--region",
          "--aws-session-token",
          "--s3-endpoint",
          "--devices",
          "--no-prompt",
          "--tags",
          "--user-provided-id",
          "--no-replication",
          "--ca-fingerprint",
          "--ca-file",
          "--resolve",
          "--bucket",
          "--path-style",
          "--install-dir",
          "--foreground",
        ]) {
          assert.ok(r.stdout.includes(flag), flag);
        }
      });

      test("usage errors exit 2 and say what is wrong", async () => {
        const cases: [string[], RegExp][] = [
          [[], /--region is required/],
          [["--region", "x", "--endpoint", "http://plain"], /must start with https/],
          [[...BASE, "--bogus"], /unknown option --bogus/],
          [[...BASE, "--resolve", "noequals"], /not NAME=IP/],
          [[...BASE, "--tags", "novalue"], /not KEY=VALUE/],
          [[...BASE, "--ca-file", "/nonexistent/ca.pem"], /cannot be read/],
          [
            ["--region", "x", "--endpoint", "https://h"],
            /access-key-id and --aws-secret-access-key are required/,
          ],
          [[...BASE, "--region"], /needs a value/],
          [
            [...BASE, "--force-volumes", "--devices", "/dev/vdb"],
            /--force-volumes needs --no-prompt and --devices/,
          ],
          [[...BASE, "--force-volumes", "--no-prompt"], /--force-volumes needs --no-prompt and --devices/],
        ];
        for (const [args, message] of cases) {
          const r = await runWith(shell, args);
          assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
          assert.match(r.stderr, message);
        }
      });

      test("the script's SigV4 signature for the control plane is the one AWS's signer makes", async () => {
        // The signing functions, run alone: everything from sha256_stdin() to the work directory.
        const text = readFileSync(INSTALLER, "utf8");
        const functions = text.slice(text.indexOf("sha256_stdin() {"), text.indexOf("WORK=$(mktemp"));
        const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY'EXAMPLE\"KEY$x";
        const url = "https://ferry-control.test:8443/ferry/agent/package.sha256";
        const out = spawnSync(
          shell[0]!,
          [
            ...shell.slice(1),
            "-c",
            `${functions}\nsign_get "$URL"; printf '%s\\n%s' "$AMZ_DATE" "$AUTHORIZATION"`,
          ],
          {
            encoding: "utf8",
            // Not a socket on stdin: bash would take itself for an rsh session and read ~/.bashrc.
            stdio: ["ignore", "pipe", "pipe"],
            env: {
              PATH: process.env.PATH,
              URL: url,
              REGION: "eu-central-1",
              AKID: "FKINEXAMPLE",
              SECRET: secret,
            },
          },
        );
        assert.equal(out.status, 0, out.stderr);
        const [amzDate, authorization] = out.stdout.split("\n");
        const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate ?? "");
        assert.ok(m, out.stdout);
        const signer = new SignatureV4({
          credentials: { accessKeyId: "FKINEXAMPLE", secretAccessKey: secret },
          region: "eu-central-1",
          service: "mgn",
          sha256: Sha256,
          // The script signs host and x-amz-date only, as the control plane requires.
          applyChecksum: false,
        });
        const signed = await signer.sign(
          {
            method: "GET",
            protocol: "https:",
            hostname: "ferry-control.test",
            port: 8443,
            path: "/ferry/agent/package.sha256",
            query: {},
            headers: { host: "ferry-control.test:8443" },
          },
          { signingDate: new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) },
        );
        assert.equal(authorization, signed.headers.authorization);
      });

      test("an unreachable bucket exits 3 and installs nothing", async () => {
        const dir = mkdtempSync(join(tmpdir(), "ferry-installer-args-"));
        try {
          const installDir = join(dir, "agent");
          const r = await runWith(shell, [
            ...BASE,
            "--s3-endpoint",
            `s3.local:${await closedPort()}`,
            "--resolve",
            "ferry-agent-us-east-1.s3.local=127.0.0.1",
            "--install-dir",
            installDir,
          ]);
          assert.equal(r.code, 3, r.stderr);
          assert.match(
            r.stderr,
            /cannot download https:\/\/ferry-agent-us-east-1\.s3\.local:\d+\/latest\/linux\//,
          );
          assert.ok(!existsSync(installDir));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    },
  );
}

test(
  "BusyBox's wget is refused: it does not verify certificates",
  { skip: !have("busybox") && "busybox not installed" },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-installer-bbwget-"));
    try {
      symlinkSync(
        spawnSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).stdout.trim(),
        join(dir, "wget"),
      );
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
        execFile(
          "dash",
          [
            INSTALLER,
            ...BASE,
            "--s3-endpoint",
            "s3.local:1",
            "--downloader",
            "wget",
            "--install-dir",
            join(dir, "agent"),
          ],
          { env: { PATH: `${dir}:/usr/sbin:/usr/bin:/sbin:/bin` }, timeout: 30_000 },
          (err, _stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        ),
      );
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /not GNU Wget/);
      assert.ok(!existsSync(join(dir, "agent")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "on a terminal, a missing region, endpoint and key are asked for; the secret is not echoed",
  { skip: (!have("script") || !have("dash")) && "script (util-linux) or dash not installed" },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-installer-prompt-"));
    try {
      const port = await closedPort();
      const command = `dash ${INSTALLER} --s3-endpoint s3.local:${port} --install-dir ${join(dir, "agent")}`;
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        env: { PATH: process.env.PATH, TERM: "dumb", HOME: dir },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let output = "";
      const answers: [string, string][] = [
        ["AWS Region Name: ", "eu-west-3"],
        ["Control plane endpoint (https://host[:port]): ", "https://127.0.0.1:1"],
        ["AWS Access Key ID: ", "FKINPROMPTED"],
        ["AWS Secret Access Key: ", "s3cr3t-typed-here"],
      ];
      child.stdout.on("data", (c: Buffer) => {
        output += c.toString();
        const next = answers[0];
        if (next && output.endsWith(next[0])) {
          answers.shift();
          child.stdin.write(`${next[1]}\r`);
        }
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await new Promise<number | null>((r) => child.on("close", r));
      clearTimeout(timer);
      assert.deepEqual(answers, [], `not every question was asked:\n${output}`);
      // The answers were taken: the bucket is named after the region typed, and the download was tried.
      assert.match(output, /cannot download https:\/\/ferry-agent-eu-west-3\.s3\.local:\d+\/latest\/linux\//);
      assert.doesNotMatch(output, /s3cr3t-typed-here/, "the secret was echoed");
      assert.equal(code, 3, output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("shellcheck finds nothing", { skip: !have("shellcheck") && "shellcheck not installed" }, () => {
  const r = spawnSync("shellcheck", ["-s", "sh", INSTALLER], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout);
});
