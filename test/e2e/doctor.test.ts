/**
 * `ferry doctor` against the reference private network (test/support/lab.ts),
 * one misconfiguration at a time on one shared lab: each case turns a knob,
 * runs the doctor where an operator would (on the source host, as the
 * installed agent's configuration says, or before installing), checks that
 * `--json` names the right flow and cause, checks what the control plane
 * shows (the agent's report of the failing flow; AGENT_NOT_SEEN on F2 when
 * the agent cannot reach it; no source server when the installer stops
 * before registering — docs/private-network.md says why), and turns the
 * knob back. The control plane runs with a short --agent-not-seen-after.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  agentLog,
  describeCli as describeCliOf,
  describeServer as describeServerOf,
  downloadInstaller,
  FERRY,
  flow,
  seen,
  serverDoctor,
  replicatorDoctor,
  serverShows as serverShowsOf,
  type SourceServer,
  sourceDoctor,
  sourceServerIds,
  until,
} from "../support/doctor.ts";
import { createLab, labUnavailable, type Lab } from "../support/lab.ts";

const MiB = 1024 * 1024;
/** The control plane's --agent-not-seen-after here: above the agents' 10 s report interval, short enough to wait for. */
const NOT_SEEN_AFTER_SECONDS = 20;

const skip = labUnavailable();

describe("ferry doctor on the reference private network", { skip, timeout: 480_000 }, () => {
  let lab: Lab;
  let stateDir = "";
  let id = "";
  let device = "";

  const doctor = (args: string[] = [], o: { objectStore?: boolean } = {}) =>
    sourceDoctor(lab, stateDir, args, o);
  const describeServer = () => describeServerOf(lab, id);
  const describeCli = () => describeCliOf(lab, id);

  /** Waits until the control plane shows the agent's connection failing with `code`. */
  const serverShows = (code: string): Promise<SourceServer> =>
    serverShowsOf(lab, id, `F7 ${code}`, (s) =>
      Boolean(s.dataReplicationInfo?.dataReplicationError?.rawError?.includes(code)),
    );

  /**
   * The control plane's own knowledge of an agent that cannot reach it: once
   * no report has arrived for --agent-not-seen-after, the server is STALLED
   * with AGENT_NOT_SEEN naming F2 — the last report, how long ago, the likely
   * causes and the doctor to run — in the API, in `ferry source-server
   * describe` (failedFlow) and in `ferry doctor --server`; the last two given
   * no threshold: they use the running server's.
   */
  async function serverShowsNotSeen(): Promise<void> {
    const s = await serverShowsOf(
      lab,
      id,
      "AGENT_NOT_SEEN",
      (x) => x.dataReplicationInfo?.dataReplicationError?.error === "AGENT_NOT_SEEN",
      (NOT_SEEN_AFTER_SECONDS + 40) * 1000,
    );
    assert.equal(s.dataReplicationInfo?.dataReplicationState, "STALLED");
    const lastSeen = s.lifeCycle?.lastSeenByServiceDateTime ?? "";
    assert.ok(lastSeen, JSON.stringify(s));
    const silence = `no report from the agent of ${id} since ${lastSeen.replace(/\./g, "\\.")} \\(\\d+ s ago; AGENT_NOT_SEEN after ${NOT_SEEN_AFTER_SECONDS} s\\)`;
    const raw = s.dataReplicationInfo?.dataReplicationError?.rawError ?? "";
    assert.match(raw, new RegExp(`^F2 service from the source \\(443\\): ${silence} — `));
    assert.match(raw, /security group does not allow TCP 443 from the source.*hosts line.*return route/);
    assert.match(raw, /Fix: run `ferry doctor --source`.*\[AGENT_NOT_SEEN\]$/);
    const cli = await describeCli();
    assert.equal(cli.dataReplicationInfo?.dataReplicationError?.error, "AGENT_NOT_SEEN");
    assert.equal(cli.failedFlow?.flow, "F2");
    assert.equal(cli.failedFlow.code, "AGENT_NOT_SEEN");
    assert.match(cli.failedFlow.observed, new RegExp(`^${silence}$`));
    const server = await serverDoctor(lab);
    assert.equal(server.code, 1);
    const f2 = flow(server.flows, "F2");
    assert.equal(f2.code, "AGENT_NOT_SEEN", JSON.stringify(f2));
    assert.match(f2.observed, new RegExp(`^${silence}$`));
    // The replicator's heartbeats are judged by their own threshold, not this short one.
    assert.equal(flow(server.flows, "F4").ok, true, JSON.stringify(server.flows));
  }

  /** After a knob is undone: the agent reports again (bounded), so the next case starts clean. */
  async function agentBack(): Promise<void> {
    await serverShowsOf(lab, id, "the agent seen again", seen, 60_000);
  }

  before(async () => {
    lab = await createLab({ agentNotSeenAfterSeconds: NOT_SEEN_AFTER_SECONDS });
    const disk = await lab.addSourceDisk(8 * MiB);
    device = disk.device;
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

  it("the agent package not published: F1 names it; once published, F1 passes", async () => {
    const before = flow((await doctor([], { objectStore: true })).flows, "F1");
    assert.equal(before.ok, false);
    assert.equal(before.code, "PACKAGE_NOT_PUBLISHED", JSON.stringify(before));
    assert.match(before.observed, /ferry-agent-linux-x64\.tar\.gz\.sha256 answered 404/);
    assert.match(before.fix, /ferry release publish/);
    await lab.publishAgentPackage();
    const after = flow((await doctor([], { objectStore: true })).flows, "F1");
    assert.equal(after.ok, true, JSON.stringify(after));
    assert.match(after.observed, /\/latest\/linux\/ferry-agent-linux-x64\.tar\.gz\.sha256 is published/);
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
      // The operator's first step fails: the installer cannot be downloaded, so nothing can
      // register — the control plane has no new source server (MGN's console shows none). The
      // registered agent never uses F1 again: its server shows no error.
      const installer = join(lab.dir, "source", "installer-f1-blocked");
      const dl = await downloadInstaller(lab, installer, 3);
      assert.equal(dl.code, 28, `the download was not dropped: ${dl.stderr}`);
      assert.deepEqual(await sourceServerIds(lab), [id]);
      const s = await describeServer();
      assert.equal(s?.dataReplicationInfo?.dataReplicationError, undefined, JSON.stringify(s));
      assert.equal((await describeCli()).failedFlow, undefined);
    } finally {
      await lab.allowObjectStore();
    }
    // The rule was the only block: the same download now works.
    const again = await downloadInstaller(lab, join(lab.dir, "source", "installer-f1-open"));
    assert.equal(again.code, 0, again.stderr);
  });

  it("443 not allowed from the replicators to the object-store endpoint: the replicator's doctor names F6", async () => {
    await lab.blockObjectStore("replicators");
    try {
      const e = lab.endpoints;
      const r = await replicatorDoctor(lab, [
        "--s3-endpoint",
        e.objectStore.endpoint,
        "--s3-ca-file",
        e.objectStore.caFile,
      ]);
      assert.equal(r.code, 1, r.text);
      const f6 = flow(r.flows, "F6");
      assert.equal(f6.code, "SG_443_MISSING", JSON.stringify(f6));
      assert.match(f6.observed, /TCP 443 to the object-store endpoint at 10\.20\.0\.20: no answer/);
      assert.match(f6.fix, /allow TCP 443 from 10\.20\.0\.30 in the object-store endpoint's security group/);
      for (const other of ["F3", "F4", "F7"]) assert.equal(flow(r.flows, other).ok, true, other);
      // What the control plane shows: nothing of F6. This lab's replicator keeps its staging
      // volumes on its own disk, so replication is unaffected; and a replicator cannot report
      // its staging store's reachability (docs/private-network.md): its heartbeats go on, so
      // `ferry doctor --server` still counts it live and the source server shows no error.
      const server = await serverDoctor(lab);
      assert.equal(flow(server.flows, "F4").ok, true, server.text);
      assert.equal(
        server.flows.some((f) => f.flow === "F6"),
        false,
        server.text,
      );
      const s = await describeServer();
      assert.equal(s?.dataReplicationInfo?.dataReplicationError, undefined, JSON.stringify(s));
    } finally {
      await lab.allowObjectStore();
    }
    const open = await replicatorDoctor(lab, [
      "--s3-endpoint",
      lab.endpoints.objectStore.endpoint,
      "--s3-ca-file",
      lab.endpoints.objectStore.caFile,
    ]);
    assert.equal(flow(open.flows, "F6").ok, true, open.text);
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
      // The running agent cannot resolve the service name either: its reports stop, and the
      // control plane, which the agent cannot tell, shows what it knows.
      await serverShowsNotSeen();
      assert.match(await agentLog(lab, 20_000), /report to the control plane failed.*(EAI_AGAIN|ENOTFOUND)/);
    } finally {
      await lab.restoreServiceHostsLine();
    }
    await agentBack();
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
      // The agent's reports are lost on the way back too: AGENT_NOT_SEEN, F2.
      await serverShowsNotSeen();
    } finally {
      await lab.restoreReturnRoute();
    }
    await agentBack();
  });

  it("return route missing on the replicator only: the source sees a drop, the replicator's doctor names the return route, the server shows F7", async () => {
    await lab.removeReturnRoute(["replicator1"]);
    try {
      // The source's SYN reaches the replicator; its SYN-ACK has no way back.
      const { flows } = await doctor();
      const f7 = flow(flows, "F7");
      assert.equal(f7.code, "SG_1500_MISSING");
      assert.match(f7.cause, /ferry doctor --replicator/);
      assert.equal(flow(flows, "F2").ok, true);
      const r = await replicatorDoctor(lab, ["--source-address", lab.host("source").address]);
      const rep = r.flows;
      assert.equal(r.code, 1, r.text);
      assert.equal(flow(rep, "F4").ok, true);
      const back = flow(rep, "F7");
      assert.equal(back.code, "RETURN_ROUTE_MISSING");
      assert.match(back.observed, /10\.10\.0\.10/);
      // The agent still reaches the control plane: once its idle connection to the
      // replicator times out and a new one gets no answer, it reports F7, and the server
      // shows MGN's connect failure with the hint to ask the replicator.
      const s = await serverShowsOf(
        lab,
        id,
        "F7 from the agent",
        (x) =>
          x.dataReplicationInfo?.dataReplicationError?.error ===
          "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
        90_000,
      );
      assert.match(
        s.dataReplicationInfo?.dataReplicationError?.rawError ?? "",
        /^F7 .*ferry doctor --replicator/,
      );
      assert.equal((await describeCli()).failedFlow?.flow, "F7");
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

      // The installer itself, on a machine not yet registered (its own machine id): it
      // downloads the package through F1, runs this doctor before registering, and stops.
      // The control plane never hears of it — the TLS handshake is all it sees, and that
      // carries no identity — so no source server appears.
      const installer = join(lab.dir, "source", "ferry-installer-init");
      const dl = await downloadInstaller(lab, installer);
      assert.equal(dl.code, 0, dl.stderr);
      const machineId = join(lab.dir, "source", "machine-id-wrong-ca");
      await writeFile(machineId, `${randomBytes(16).toString("hex")}\n`);
      const inst = await lab.exec(
        "source",
        "dash",
        [
          installer,
          ...lab.installerArgs({ devices: [device], installDir: join(lab.dir, "source", "opt-wrong-ca") }),
        ],
        { env: { ...lab.sourceEnv(), FERRY_MACHINE_ID_FILE: machineId }, timeoutMs: 90_000 },
      );
      const out = `${inst.stdout}\n${inst.stderr}`;
      assert.equal(inst.code, 8, out);
      assert.match(out, /CA_FINGERPRINT_MISMATCH/);
      assert.match(out, /nothing was registered/);
      assert.deepEqual(await sourceServerIds(lab), [id]);
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
      assert.match(err?.rawError ?? "", /^F2 .*\[CLOCK_SKEW\]$/);
    } finally {
      await lab.restoreServerClock();
    }
  });
});
