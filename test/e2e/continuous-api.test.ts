/**
 * Fault row 5 through the API: a "security group" that stops allowing the
 * replicator's port 1500 (new connections dropped) must show, within a bound,
 * as a clear status in DescribeSourceServers — the error, naming the address
 * and port, with the failed initiation step (INITIATING before a first
 * connection, as MGN shows it; STALLED after one) — and replication must catch up (CONTINUOUS, no
 * error, nothing backlogged) once the port is open again. Then the same mid-stream: the rule
 * comes back while the agent replicates and its connection is reset; STALLED with the error
 * within the bound, CONTINUOUS again once reopened.
 *
 * `ferry up` (control plane and its replicator) runs in one network
 * namespace, the installed agent (`ferry agent run`) in another; the rule is
 * put on the replicator's side. DescribeSourceServers is called with the AWS
 * SDK from inside the control plane's namespace. Needs root; skips otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createScratch, haveRoot, sh } from "../support/loop.ts";
import { createNetPair, type NetPair } from "../support/netns.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const FERRY = join(ROOT, "bin", "ferry");
const NODE = process.execPath;
const MiB = 1024 * 1024;
const CONTROL_PORT = 8443;
const REPLICATOR_PORT = 1500;
/** The agent's connect timeout (10 s) plus one report interval (10 s), with room for start-up on a busy machine. */
const STATUS_BOUND_MS = 40_000;

const skip = haveRoot() ? false : "needs root (network namespaces, iptables)";

interface Described {
  dataReplicationInfo?: {
    dataReplicationState?: string;
    dataReplicationError?: { error?: string; rawError?: string };
    dataReplicationInitiation?: { steps?: { name?: string; status?: string }[] };
    replicatedDisks?: {
      totalStorageBytes?: number;
      replicatedStorageBytes?: number;
      backloggedStorageBytes?: number;
    }[];
  };
}

/** A script that calls the MGN API with the AWS SDK (run inside the control plane's namespace). */
function mgnScript(): string {
  const sdk = import.meta.resolve("@aws-sdk/client-mgn");
  const handler = import.meta.resolve("@smithy/node-http-handler");
  return `
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { DescribeSourceServersCommand, InitializeServiceCommand, MgnClient } from ${JSON.stringify(sdk)};
import { NodeHttpHandler } from ${JSON.stringify(handler)};
const [info, what, id] = [JSON.parse(process.argv[2]), process.argv[3], process.argv[4]];
const mgn = new MgnClient({
  endpoint: info.endpoint,
  region: info.region,
  credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(info.caFile) }) }),
});
if (what === "init") await mgn.send(new InitializeServiceCommand({}));
else {
  const out = await mgn.send(new DescribeSourceServersCommand({ filters: { sourceServerIDs: [id] } }));
  process.stdout.write(JSON.stringify(out.items?.[0] ?? null));
}
mgn.destroy();
`;
}

test(
  "fault row 5: port 1500 closed (before the first connection, then mid-stream) → the connection error in DescribeSourceServers within a bound; reopened → CONTINUOUS",
  { skip },
  async () => {
    const scratch = await createScratch("ferry-row5-");
    let pair: NetPair | undefined;
    try {
      pair = await createNetPair();
      const p = pair;
      const host = p.addr.staging;
      const dataDir = join(scratch.dir, "ferry");
      const up = p.spawn("staging", FERRY, [
        "up",
        "--json",
        "--data-dir",
        dataDir,
        "--listen",
        `${host}:${CONTROL_PORT}`,
        "--replicator-listen",
        `${host}:${REPLICATOR_PORT}`,
        "--cert-name",
        host,
      ]);
      const upLine = await up.waitLine("stdout", (l) => l.includes('"endpoint"'), 60_000);
      const info = JSON.parse(upLine.text) as {
        endpoint: string;
        region: string;
        caFile: string;
        accessKeyId: string;
        secretAccessKey: string;
      };
      const script = join(scratch.dir, "mgn.mjs");
      await writeFile(script, mgnScript());
      const mgn = (what: string, id = "") =>
        p.exec("staging", NODE, [
          "--disable-warning=ExperimentalWarning",
          script,
          JSON.stringify(info),
          what,
          id,
        ]);
      await mgn("init");
      const key = JSON.parse(
        await sh(FERRY, [
          "access-key",
          "create",
          "--scope",
          "install",
          "--json",
          "--data-dir",
          join(dataDir, "server"),
        ]),
      ) as { accessKeyId: string; secretAccessKey: string };

      // The source: an image standing for its disk; a fake /sys so no real disk is added.
      const disk = join(scratch.dir, "source-disk.img");
      await writeFile(
        disk,
        Buffer.concat([randomBytes(4 * MiB), Buffer.alloc(2 * MiB), randomBytes(2 * MiB)]),
      );
      const fakeRoot = join(scratch.dir, "fake-root");
      await mkdir(join(fakeRoot, "sys", "block"), { recursive: true });
      await mkdir(join(fakeRoot, "proc", "self"), { recursive: true });
      await writeFile(join(fakeRoot, "proc", "self", "mountinfo"), "");
      await writeFile(join(scratch.dir, "machine-id"), "fedcba9876543210fedcba9876543210\n");
      const env = [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        `FERRY_SYS_ROOT=${fakeRoot}`,
        `FERRY_MACHINE_ID_FILE=${join(scratch.dir, "machine-id")}`,
      ];
      const stateDir = join(scratch.dir, "agent-state");
      const installOut = await p.exec("source", "env", [
        ...env,
        FERRY,
        "agent",
        "install",
        "--json",
        "--no-prompt",
        "--no-systemd",
        "--endpoint",
        info.endpoint,
        "--region",
        info.region,
        "--ca-file",
        info.caFile,
        "--aws-access-key-id",
        key.accessKeyId,
        "--aws-secret-access-key",
        key.secretAccessKey,
        "--devices",
        disk,
        "--state-dir",
        stateDir,
        "--install-dir",
        join(scratch.dir, "opt"),
      ]);
      const { sourceServerID } = JSON.parse(installOut.trim().split("\n").at(-1)!) as {
        sourceServerID: string;
      };
      const describe = async () => JSON.parse(await mgn("describe", sourceServerID)) as Described | null;

      // The security group stops allowing new connections to the replicator's port.
      const rule = [
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        String(REPLICATOR_PORT),
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "DROP",
      ];
      await p.iptables("staging", ["-I", ...rule]);
      const started = Date.now();
      const agent = p.spawn("source", "env", [
        ...env,
        FERRY,
        "agent",
        "run",
        "--state-dir",
        stateDir,
        "--tracker",
        "scan",
      ]);
      const agentLog = () =>
        agent.stderr
          .map((l) => l.text)
          .join("\n")
          .slice(-3000);

      let stalled: Described | null = null;
      while (Date.now() - started < STATUS_BOUND_MS) {
        const s = await describe();
        if (s?.dataReplicationInfo?.dataReplicationError) {
          stalled = s;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const shownAfter = Date.now() - started;
      assert.ok(stalled, `an error within ${STATUS_BOUND_MS} ms; agent log:\n${agentLog()}`);
      const dri = stalled.dataReplicationInfo!;
      // Before its first connection MGN shows the server INITIATING with the failed step; after one, STALLED.
      assert.ok(
        ["INITIATING", "STALLED"].includes(dri.dataReplicationState ?? ""),
        `state ${dri.dataReplicationState}`,
      );
      assert.equal(dri.dataReplicationError!.error, "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER");
      const raw = dri.dataReplicationError!.rawError ?? "";
      assert.ok(
        raw.includes(host) && raw.includes(String(REPLICATOR_PORT)),
        `the error names the replicator's address and port: ${raw}`,
      );
      assert.match(raw, /security group/);
      const steps = dri.dataReplicationInitiation?.steps ?? [];
      assert.ok(
        steps.some((s) => s.name === "CONNECT_AGENT_TO_REPLICATION_SERVER" && s.status === "FAILED"),
        `the failed initiation step is shown: ${JSON.stringify(steps)}`,
      );
      assert.ok(shownAfter <= STATUS_BOUND_MS, `shown after ${shownAfter} ms`);

      // Reopened: the agent connects on its next attempt and catches up.
      await p.iptables("staging", ["-D", ...rule]);
      const deadline = Date.now() + 90_000;
      let last: Described | null = null;
      for (;;) {
        last = await describe();
        const d = last?.dataReplicationInfo;
        const disk0 = d?.replicatedDisks?.[0];
        if (
          d?.dataReplicationState === "CONTINUOUS" &&
          !d.dataReplicationError &&
          disk0?.replicatedStorageBytes === 8 * MiB &&
          disk0.backloggedStorageBytes === 0
        )
          break;
        assert.ok(
          Date.now() < deadline,
          `caught up after reopening; last: ${JSON.stringify(d)}\n${agentLog()}`,
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.equal(last!.dataReplicationInfo!.replicatedDisks![0]!.totalStorageBytes, 8 * MiB);

      // Mid-stream: the rule comes back while the agent replicates, and the established connection
      // is cut (reset, as when the replicator restarts): the agent's reconnects are dropped.
      await p.iptables("staging", ["-I", ...rule]);
      const cut = Date.now();
      await p.exec("staging", "ss", ["-K", "sport", "=", `:${REPLICATOR_PORT}`]);
      let midStream: Described | null = null;
      while (Date.now() - cut < STATUS_BOUND_MS) {
        const s = await describe();
        if (s?.dataReplicationInfo?.dataReplicationError) {
          midStream = s;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(midStream, `a mid-stream error within ${STATUS_BOUND_MS} ms; agent log:\n${agentLog()}`);
      const mid = midStream.dataReplicationInfo!;
      assert.equal(mid.dataReplicationState, "STALLED", "after a first connection MGN shows STALLED");
      assert.equal(mid.dataReplicationError!.error, "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER");
      assert.ok(
        (mid.dataReplicationError!.rawError ?? "").includes(String(REPLICATOR_PORT)),
        `the error names the port: ${mid.dataReplicationError!.rawError}`,
      );

      // Reopened again: back to CONTINUOUS with no error.
      await p.iptables("staging", ["-D", ...rule]);
      const deadline2 = Date.now() + 90_000;
      for (;;) {
        const d = (await describe())?.dataReplicationInfo;
        if (d?.dataReplicationState === "CONTINUOUS" && !d.dataReplicationError) break;
        assert.ok(Date.now() < deadline2, `caught up after the mid-stream cut; last: ${JSON.stringify(d)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      try {
        await pair?.close();
      } finally {
        await scratch.cleanup();
      }
    }
  },
);
