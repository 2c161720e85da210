/**
 * `ferry doctor` against the reference private network (test/support/lab.ts),
 * one misconfiguration at a time on one shared lab: each case turns a knob,
 * runs the doctor where an operator would (on the source host, as the
 * installed agent's configuration says, or before installing), checks that
 * `--json` names the right flow and cause, checks what the control plane
 * shows when the agent gets far enough to report, and turns the knob back.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLab, labUnavailable, type Lab } from "../support/lab.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const FERRY = join(ROOT, "bin", "ferry");
const MiB = 1024 * 1024;

interface Finding {
  flow: string;
  ok: boolean;
  observed: string;
  cause: string;
  fix: string;
  code?: string;
  skipped?: boolean;
}

interface SourceServer {
  sourceServerID: string;
  dataReplicationInfo?: {
    dataReplicationState?: string;
    dataReplicationError?: { error?: string; rawError?: string };
    dataReplicationInitiation?: { steps?: { name: string; status: string }[] };
  };
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const skip = labUnavailable();

describe("ferry doctor on the reference private network", { skip, timeout: 170_000 }, () => {
  let lab: Lab;
  let stateDir = "";
  let id = "";

  /** `ferry doctor --source --json` on the source host; `args` replace the installed configuration. */
  async function doctor(
    args: string[] = [],
    o: { objectStore?: boolean } = {},
  ): Promise<{ code: number; flows: Finding[]; text: string }> {
    const e = lab.endpoints;
    const r = await lab.exec(
      "source",
      FERRY,
      [
        "doctor",
        "--source",
        "--state-dir",
        stateDir,
        ...(o.objectStore
          ? ["--s3-endpoint", e.objectStore.endpoint, "--s3-ca-file", e.objectStore.caFile]
          : []),
        "--timeout-ms",
        "2000",
        "--probe-bytes",
        String(2 * MiB),
        "--json",
        ...args,
      ],
      { env: lab.sourceEnv(), timeoutMs: 60_000 },
    );
    const text = r.stdout.trim();
    assert.ok(text.startsWith("{"), `doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return { code: r.code, flows: (JSON.parse(text) as { flows: Finding[] }).flows, text };
  }

  function flow(flows: Finding[], id: string): Finding {
    const f = flows.find((x) => x.flow === id);
    assert.ok(f, `no ${id} in ${JSON.stringify(flows)}`);
    return f;
  }

  async function describeServer(): Promise<SourceServer | undefined> {
    const r = await lab.mgn<{ items?: SourceServer[] }>("DescribeSourceServers", {
      filters: { sourceServerIDs: [id] },
    });
    return r.items?.[0];
  }

  /** What `ferry source-server describe` prints on the control plane's host. */
  async function describeCli(): Promise<SourceServer & { failedFlow?: Finding }> {
    const r = await lab.exec("service", FERRY, [
      "source-server",
      "describe",
      id,
      "--data-dir",
      lab.endpoints.controlPlane.dataDir,
      "--region",
      lab.plan.names.region,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as SourceServer & { failedFlow?: Finding };
  }

  /** Waits until the control plane shows the agent's connection failing with `code`. */
  async function serverShows(code: string): Promise<SourceServer> {
    return until(`the control plane to show F7 ${code}`, 60_000, async () => {
      const s = await describeServer();
      const e = s?.dataReplicationInfo?.dataReplicationError;
      return e?.rawError?.includes(code) ? s : undefined;
    }).catch(async (err: unknown) => {
      const log = lab.process("agent");
      const tail = log ? (await readFile(log.stderrFile, "utf8").catch(() => "")).slice(-2000) : "";
      throw new Error(
        `${(err as Error).message}\n${JSON.stringify(await describeServer())}\nagent:\n${tail}`,
      );
    });
  }

  before(async () => {
    lab = await createLab();
    const disk = await lab.addSourceDisk(8 * MiB);
    const fh = await open(disk.device, "r+");
    await fh.write(randomBytes(4 * MiB), 0, 4 * MiB, 0);
    await fh.sync();
    await fh.close();
    // The data plane is closed before the agent ever connects (rules are stateful: an open
    // connection would outlive the knob).
    await lab.blockDataPlane();
    // Registered as the installer's hand-over does (the installer itself, and its run of the
    // doctor, are test/e2e/installer*.test.ts's and private-network.test.ts's).
    stateDir = join(lab.dir, "source", "state");
    const e = lab.endpoints;
    const inst = await lab.exec(
      "source",
      FERRY,
      [
        "agent",
        "install",
        "--endpoint",
        e.controlPlane.endpoint,
        "--region",
        lab.plan.names.region,
        "--ca-fingerprint",
        e.controlPlane.caFingerprint,
        "--devices",
        disk.device,
        "--no-prompt",
        "--no-systemd",
        "--state-dir",
        stateDir,
      ],
      {
        env: {
          ...lab.sourceEnv(),
          AWS_ACCESS_KEY_ID: e.keys.install.accessKeyId,
          AWS_SECRET_ACCESS_KEY: e.keys.install.secretAccessKey,
        },
        timeoutMs: 60_000,
      },
    );
    assert.equal(inst.code, 0, `agent install failed:\n${inst.stderr}`);
    id = /(s-[0-9a-zA-Z]{17})/.exec(inst.stdout)?.[1] ?? "";
    assert.ok(id, inst.stdout);
    await lab.spawn(
      "source",
      "agent",
      FERRY,
      ["agent", "run", "--state-dir", stateDir, "--tracker", "scan"],
      lab.sourceEnv(),
    );
  });

  after(async () => {
    if (!lab) return;
    const report = await lab.close();
    assert.deepEqual(report.errors, []);
  });

  it("1500 not allowed to the replicator: F7, the security group; the server shows FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER", async () => {
    const { code, flows } = await doctor();
    assert.equal(code, 1);
    const f7 = flow(flows, "F7");
    assert.equal(f7.ok, false);
    assert.equal(f7.code, "SG_1500_MISSING");
    assert.match(f7.observed, /TCP 1500 .*timed out/);
    assert.match(f7.fix, /allow TCP 1500 from 10\.10\.0\.10/);
    for (const other of ["F3", "F2"]) assert.equal(flow(flows, other).ok, true, other);

    const s = await serverShows("SG_1500_MISSING");
    const info = s.dataReplicationInfo!;
    assert.equal(info.dataReplicationError?.error, "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER");
    assert.match(info.dataReplicationError?.rawError ?? "", /^F7 /);
    assert.deepEqual(
      info.dataReplicationInitiation?.steps?.find((x) => x.name === "CONNECT_AGENT_TO_REPLICATION_SERVER")
        ?.status,
      "FAILED",
    );
    const cli = await describeCli();
    assert.equal(cli.failedFlow?.flow, "F7");
    assert.equal(cli.failedFlow?.code, "SG_1500_MISSING");
  });

  it("PUBLIC_IP selected where only the private link exists: F7 names the routing; the server shows it", async () => {
    await lab.setDataPlaneRouting("PUBLIC_IP", id);
    try {
      // The agent follows the new assignment to the public address before 1500 opens again.
      const s = await serverShows("PUBLIC_IP_ON_PRIVATE_LINK");
      assert.equal(
        s.dataReplicationInfo?.dataReplicationError?.error,
        "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
      );
      await lab.allowDataPlane();
      const { code, flows } = await doctor();
      assert.equal(code, 1);
      const f7 = flow(flows, "F7");
      assert.equal(f7.code, "PUBLIC_IP_ON_PRIVATE_LINK");
      assert.match(f7.observed, /198\.51\.100\..*the private address 10\.20\.0\.30:1500 answers/);
      assert.match(f7.fix, /PRIVATE_IP/);
      assert.equal((await describeCli()).failedFlow?.code, "PUBLIC_IP_ON_PRIVATE_LINK");
    } finally {
      await lab.setDataPlaneRouting("PRIVATE_IP", id);
    }
  });

  it("everything open: every flow passes, with the data-plane probe, and replication runs", async () => {
    await until("the agent replicating", 60_000, async () => {
      const s = await describeServer();
      const st = s?.dataReplicationInfo?.dataReplicationState;
      return st && !s?.dataReplicationInfo?.dataReplicationError && st !== "INITIATING" ? st : undefined;
    });
    const { code, flows } = await doctor();
    assert.deepEqual(
      flows.filter((f) => !f.ok),
      [],
    );
    assert.equal(code, 0);
    assert.deepEqual(
      flows.map((f) => f.flow),
      ["F3", "F2", "F7"],
    );
    assert.match(flow(flows, "F7").observed, /MiB\/s/);
    assert.equal((await describeCli()).failedFlow, undefined);
  });

  it("443 not allowed to the object-store endpoint: F1, its security group", async () => {
    await lab.blockObjectStore();
    try {
      const { flows } = await doctor([], { objectStore: true });
      const f1 = flow(flows, "F1");
      assert.equal(f1.code, "SG_443_MISSING");
      assert.match(f1.cause, /object-store endpoint's security group drops TCP 443/);
      assert.equal(flow(flows, "F2").ok, true);
    } finally {
      await lab.allowObjectStore();
    }
  });

  it("missing hosts line for the service name: F3, and F2 blocked by it", async () => {
    await lab.removeServiceHostsLine();
    try {
      const { flows } = await doctor();
      const f3 = flow(flows, "F3");
      assert.equal(f3.code, "HOSTS_LINE_MISSING");
      assert.match(f3.observed, new RegExp(lab.plan.names.service.replace(/\./g, "\\.")));
      assert.match(f3.fix, /\/etc\/hosts/);
      const f2 = flow(flows, "F2");
      assert.equal(f2.ok, false);
      assert.equal(f2.code, "BLOCKED");
    } finally {
      await lab.restoreServiceHostsLine();
    }
  });

  it("missing return route: every staging endpoint times out, named as the return route", async () => {
    await lab.removeReturnRoute();
    try {
      const { flows } = await doctor([], { objectStore: true });
      for (const id of ["F1", "F2", "F7"]) {
        const f = flow(flows, id);
        assert.equal(f.code, "RETURN_ROUTE_MISSING", `${id}: ${JSON.stringify(f)}`);
        assert.match(f.cause, /no route back to the source/);
      }
      assert.equal(flow(flows, "F3").ok, true);
    } finally {
      await lab.restoreReturnRoute();
    }
  });

  it("return route missing on the replicator only: the source sees a drop, the replicator's doctor names the return route", async () => {
    await lab.removeReturnRoute(["replicator1"]);
    try {
      // The source's SYN reaches the replicator; its SYN-ACK has no way back.
      const { flows } = await doctor();
      const f7 = flow(flows, "F7");
      assert.equal(f7.code, "SG_1500_MISSING");
      assert.match(f7.cause, /ferry doctor --replicator/);
      assert.equal(flow(flows, "F2").ok, true);
      const e = lab.endpoints;
      const r = await lab.exec("replicator1", FERRY, [
        "doctor",
        "--replicator",
        "--join",
        e.controlPlane.endpoint,
        "--region",
        lab.plan.names.region,
        "--ca-file",
        e.controlPlane.caFile,
        "--aws-access-key-id",
        e.keys.replicator.accessKeyId,
        "--aws-secret-access-key",
        e.keys.replicator.secretAccessKey,
        "--listen",
        e.replicators[0]!.privateAddress,
        "--source-address",
        lab.host("source").address,
        "--json",
      ]);
      const rep = (JSON.parse(r.stdout) as { flows: Finding[] }).flows;
      assert.equal(r.code, 1, r.stdout);
      assert.equal(flow(rep, "F4").ok, true);
      const back = flow(rep, "F7");
      assert.equal(back.code, "RETURN_ROUTE_MISSING");
      assert.match(back.observed, /10\.10\.0\.10/);
    } finally {
      await lab.restoreReturnRoute();
    }
  });

  it("wrong CA fingerprint (before installing, as the installer runs it): F2 names the mismatch", async () => {
    const wrong = await lab.useWrongCaFingerprint();
    try {
      const { flows } = await doctor([
        "--endpoint",
        lab.endpoints.controlPlane.endpoint,
        "--region",
        lab.plan.names.region,
        "--ca-fingerprint",
        wrong,
        "--aws-access-key-id",
        lab.endpoints.keys.install.accessKeyId,
        "--aws-secret-access-key",
        lab.endpoints.keys.install.secretAccessKey,
      ]);
      const f2 = flow(flows, "F2");
      assert.equal(f2.code, "CA_FINGERPRINT_MISMATCH");
      assert.match(f2.cause, /wrong CA fingerprint/);
    } finally {
      await lab.useRightCaFingerprint();
    }
  });

  it("server clock skewed: F2 names the clock skew", async () => {
    await lab.skewServerClock(3600);
    try {
      const { flows } = await doctor();
      const f2 = flow(flows, "F2");
      assert.equal(f2.code, "CLOCK_SKEW", JSON.stringify(f2));
      assert.match(f2.observed, /3[56]\d\d s ahead/);
      assert.match(f2.fix, /NTP/);
      // The agent's reports are refused too: the control plane records why on its server.
      const shown = await until("the server to record the refused signature", 40_000, async () => {
        const d = await describeCli();
        return d.failedFlow?.code === "CLOCK_SKEW" ? d : undefined;
      });
      const err = shown.dataReplicationInfo?.dataReplicationError;
      assert.ok(
        ["FAILED_TO_AUTHENTICATE_WITH_SERVICE", "AGENT_NOT_SEEN"].includes(err?.error ?? ""),
        JSON.stringify(err),
      );
      assert.match(err?.rawError ?? "", /^(F2 |No report).*\[CLOCK_SKEW\]$/);
    } finally {
      await lab.restoreServerClock();
    }
  });
});
