/**
 * `ferry source-server describe` and `ferry doctor --server` read the
 * database, not the running server: they judge "not seen" by the threshold
 * the running server wrote at its start, unless a flag overrides it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { main } from "./main.ts";
import { createTestPlane, registration } from "../control/testing.ts";
import { startServer } from "../control/index.ts";
import { silentLogger } from "../lib/log.ts";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
  stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const code = await main(args, {
    stdout,
    stderr,
    isTTY: false,
    env: {},
    signal: new AbortController().signal,
  });
  return { code, out, err };
}

interface Described {
  dataReplicationInfo?: {
    dataReplicationState?: string;
    dataReplicationError?: { error: string; rawError?: string };
  };
  failedFlow?: { flow: string; code?: string; observed: string };
}

test("without --agent-not-seen-after, describe and doctor --server use the running server's threshold", async () => {
  const t = await createTestPlane();
  const dir = t.cp.options.dataDir;
  let id = "";
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    await t.call("/InitializeService");
    const install = await t.cp.accessKeys.create("install", "x");
    const reg = await t.call("/ferry/agent/register", registration("cli-notseen-1"), { creds: install });
    id = reg.body.sourceServerID as string;
    // The agent's last report, 10 s ago.
    await t.cp.store.sourceServers.update(id, (r) => ({
      ...r,
      agent: { ...r.agent, lastSeenAt: Date.now() - 10_000 },
    }));
    const describe = async (...flags: string[]) => {
      const r = await run(["source-server", "describe", id, "--data-dir", dir, ...flags]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as Described;
    };
    // No server has run on this database yet: the default, 60 s.
    assert.equal((await describe()).dataReplicationInfo?.dataReplicationError, undefined);

    server = await startServer({
      dataDir: dir,
      port: 0,
      agentNotSeenAfterSeconds: 7,
      certNames: ["localhost"],
      logger: silentLogger,
    });
    const d = await describe();
    assert.equal(d.dataReplicationInfo?.dataReplicationState, "STALLED");
    const err = d.dataReplicationInfo?.dataReplicationError;
    assert.equal(err?.error, "AGENT_NOT_SEEN");
    assert.match(
      err?.rawError ?? "",
      /^F2 service from the source \(443\): no report from the agent of s-\w+ since \S+Z \(1\d s ago; AGENT_NOT_SEEN after 7 s\) — .*\[AGENT_NOT_SEEN\]$/,
    );
    assert.equal(d.failedFlow?.code, "AGENT_NOT_SEEN");
    assert.match(d.failedFlow?.observed ?? "", /AGENT_NOT_SEEN after 7 s/);
    // The flag still overrides.
    assert.equal(
      (await describe("--agent-not-seen-after", "60")).dataReplicationInfo?.dataReplicationError,
      undefined,
    );

    const doctor = await run(["doctor", "--server", "--data-dir", dir, "--json"]);
    assert.equal(doctor.code, 1, doctor.out);
    const flows = (
      JSON.parse(doctor.out) as { flows: { flow: string; ok: boolean; code?: string; observed: string }[] }
    ).flows;
    const f2 = flows.find((f) => f.flow === "F2");
    assert.equal(f2?.code, "AGENT_NOT_SEEN", doctor.out);
    assert.match(f2?.observed ?? "", /AGENT_NOT_SEEN after 7 s/);
    const relaxed = await run([
      "doctor",
      "--server",
      "--data-dir",
      dir,
      "--agent-not-seen-after",
      "60",
      "--json",
    ]);
    assert.equal(relaxed.code, 0, relaxed.out);
  } finally {
    await server?.close();
    await t.close();
  }
});
