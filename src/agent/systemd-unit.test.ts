import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { renderUnit } from "./systemd-unit.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");
/** Preloaded into the CLI: prints the Node options the process runs with. */
const PRINT_FLAGS = `data:text/javascript;base64,${Buffer.from(
  'process.stderr.write("EXECARGV " + JSON.stringify(process.execArgv) + "\\n");',
).toString("base64")}`;

async function execArgvOf(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const { stderr } = await run(command, args, {
    env: { ...process.env, ...env, NODE_OPTIONS: `--import=${PRINT_FLAGS}` },
  });
  const line = stderr.split("\n").find((l) => l.startsWith("EXECARGV "));
  assert.ok(line, `no EXECARGV line in ${JSON.stringify(stderr.slice(0, 500))}`);
  return JSON.parse(line.slice("EXECARGV ".length)) as string[];
}

test("the unit runs the bundled bin/ferry, which gives every agent command a small young generation (P6)", async () => {
  const unit = renderUnit(ROOT, "/var/lib/ferry");
  const exec = /^ExecStart=(\S+) agent run --state-dir \/var\/lib\/ferry$/m.exec(unit);
  assert.ok(exec, unit);
  const launcher = exec[1]!;
  assert.equal(launcher, join(ROOT, "bin", "ferry"));
  assert.ok((await execArgvOf(launcher, ["agent", "--help"])).includes("--max-semi-space-size=2"));
  // Only the agent: the control plane keeps V8's defaults.
  assert.ok(!(await execArgvOf(launcher, ["server", "--help"])).some((f) => f.startsWith("--max-semi")));
  // An operator can override it.
  const custom = await execArgvOf(launcher, ["agent", "--help"], {
    FERRY_AGENT_NODE_FLAGS: "--max-semi-space-size=4",
  });
  assert.ok(custom.includes("--max-semi-space-size=4") && !custom.includes("--max-semi-space-size=2"));
});

test("bin/ferry starts replicator commands with a larger initial heap, and the variable overrides it", async () => {
  const launcher = join(ROOT, "bin", "ferry");
  const replicator = await execArgvOf(launcher, ["replicator", "--help"]);
  assert.ok(replicator.includes("--initial-heap-size=128"));
  // Per-record TLS buffers are freed by young-generation collections rather than full ones.
  assert.ok(replicator.includes("--max-semi-space-size=2"));
  assert.ok(!(await execArgvOf(launcher, ["agent", "--help"])).some((f) => f.startsWith("--initial-heap")));
  const none = await execArgvOf(launcher, ["replicator", "--help"], { FERRY_REPLICATOR_NODE_FLAGS: "" });
  assert.ok(!none.some((f) => f.startsWith("--initial-heap")));
});

test("bin/ferry gives agent commands a thread pool for 32 reads at once, unless UV_THREADPOOL_SIZE is set", async () => {
  const launcher = join(ROOT, "bin", "ferry");
  const PRINT_POOL = `data:text/javascript;base64,${Buffer.from(
    'process.stderr.write("POOL " + String(process.env.UV_THREADPOOL_SIZE) + "\\n");',
  ).toString("base64")}`;
  const pool = async (args: string[], env: NodeJS.ProcessEnv) => {
    const base = { ...process.env };
    delete base.UV_THREADPOOL_SIZE;
    const { stderr } = await run(launcher, args, {
      env: { ...base, ...env, NODE_OPTIONS: `--import=${PRINT_POOL}` },
    });
    return /^POOL (.*)$/m.exec(stderr)?.[1];
  };
  assert.equal(await pool(["agent", "--help"], {}), "32");
  assert.equal(await pool(["agent", "--help"], { UV_THREADPOOL_SIZE: "8" }), "8");
  assert.equal(await pool(["replicator", "--help"], {}), "undefined");
});
