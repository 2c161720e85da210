/**
 * ferry-installer-init's own checks, under every POSIX shell found here
 * (dash, busybox sh, bash in POSIX mode): usage errors exit 2 before any
 * download, an unreachable bucket exits 3 with nothing installed, and the
 * script passes shellcheck when it is installed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
        ];
        for (const [args, message] of cases) {
          const r = await runWith(shell, args);
          assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
          assert.match(r.stderr, message);
        }
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

test("shellcheck finds nothing", { skip: !have("shellcheck") && "shellcheck not installed" }, () => {
  const r = spawnSync("shellcheck", ["-s", "sh", INSTALLER], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout);
});
