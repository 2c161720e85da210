import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  AGENT_DEPENDENCIES,
  buildAgentPackage,
  dependencyClosure,
  sha256OfFile,
  type BuildResult,
} from "./build.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
let dir: string;
let built: BuildResult;
let entries: string[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferry-release-test-"));
  built = await buildAgentPackage({ root: ROOT, outDir: join(dir, "a"), withRuntime: false });
  const { stdout } = await run("tar", ["-tzf", built.file], { maxBuffer: 64 * 1024 * 1024 });
  entries = stdout.split("\n").filter(Boolean);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("the closure holds the agent's packages, their dependencies and this platform's binary, nothing else", async () => {
  const closure = await dependencyClosure(ROOT, AGENT_DEPENDENCIES);
  for (const name of AGENT_DEPENDENCIES) assert.ok(closure.includes(`node_modules/${name}`), name);
  assert.ok(
    closure.some((p) => /^node_modules\/@napi-rs\/blake-hash-linux-/.test(p)),
    "platform binary",
  );
  assert.ok(closure.includes("node_modules/tslib"), "a dependency of a dependency");
  for (const heavy of ["aws-cdk-lib", "@aws-sdk/client-s3", "hono", "pg", "typescript"]) {
    assert.ok(!closure.includes(`node_modules/${heavy}`), heavy);
  }
});

test("the package holds the CLI, the sources without tests, and pruned node_modules", () => {
  for (const must of [
    "bin/ferry",
    "package.json",
    "src/cli/main.ts",
    "src/agent/control-client.ts",
    "node_modules/zod/package.json",
  ]) {
    assert.ok(entries.includes(must), must);
  }
  assert.ok(!entries.some((e) => e.endsWith(".test.ts")), "test files");
  assert.ok(!entries.some((e) => e.includes("/fixtures/")), "fixtures");
  assert.ok(!entries.some((e) => /\.d\.[cm]?ts$|\.map$/.test(e)), "declarations and source maps");
  assert.ok(!entries.some((e) => e.startsWith(".tools/")), "no runtime when built without it");
  assert.ok(!entries.some((e) => e.startsWith("/") || e.split("/").includes("..")), "unsafe paths");
  assert.equal(built.files, entries.length);
});

test("the .sha256 is sha256sum's format and the build is reproducible", async () => {
  assert.equal(await readFile(built.sha256File, "utf8"), `${built.sha256}  ferry-agent-linux-x64.tar.gz\n`);
  assert.equal(await sha256OfFile(built.file), built.sha256);
  const again = await buildAgentPackage({ root: ROOT, outDir: join(dir, "b"), withRuntime: false });
  assert.equal(again.sha256, built.sha256);
});

test("with its runtime the package runs on a source that has no node at all", async () => {
  const out = join(dir, "runtime");
  const withNode = await buildAgentPackage({ root: ROOT, outDir: out, withRuntime: true });
  const unpacked = join(dir, "unpacked");
  await mkdir(unpacked);
  await run("tar", ["-xzf", withNode.file, "-C", unpacked]);
  // A PATH with only what bin/ferry's wrapper needs: no node anywhere on it.
  const bin = join(dir, "path");
  await mkdir(bin);
  for (const tool of ["readlink", "dirname"]) {
    const { stdout } = await run("sh", ["-c", `command -v ${tool}`]);
    await symlink(stdout.trim(), join(bin, tool));
  }
  const { stdout } = await run(join(unpacked, "bin", "ferry"), ["agent", "disks", "--json"], {
    env: { PATH: bin, HOME: dir },
  }).catch((err: { stdout?: string; stderr?: string }) => {
    throw new Error(`the unpacked agent did not run: ${err.stderr ?? String(err)}`);
  });
  assert.ok(Array.isArray((JSON.parse(stdout) as { disks?: unknown }).disks), stdout);
  assert.ok(withNode.bytes > 20 * 1024 * 1024, `${withNode.bytes} bytes: the runtime is missing`);
});
