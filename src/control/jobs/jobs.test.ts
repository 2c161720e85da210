/**
 * Launch jobs and the launch lifecycle through the HTTP app in process, with
 * an in-memory launcher (the real ones are tested in src/launch and
 * test/e2e/launch*): job shape, log events, TESTING → READY_FOR_CUTOVER →
 * CUTTING_OVER → CUTOVER, terminate, finalize, archive, MGN's refusals, and a
 * job interrupted by a restart.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestPlane, Credentials } from "../testing.ts";
import { createTestPlane, registration } from "../testing.ts";
import type { Launcher, LaunchRequest, LaunchedInstanceDetails } from "../../model/launch.ts";
import type { Job, JobLog, SourceServer } from "../../model/mgn-shapes.gen.ts";
import { FerryError } from "../../lib/errors.ts";

interface FakeLauncher extends Launcher {
  launched: LaunchRequest[];
  terminated: string[];
  released: string[];
  failNext?: string;
  hang?: boolean;
}

function fakeLauncher(): FakeLauncher {
  const f: FakeLauncher = {
    launched: [],
    terminated: [],
    released: [],
    async launch(req) {
      f.launched.push(req);
      if (f.hang) {
        await new Promise((_r, reject) =>
          req.signal.addEventListener("abort", () => reject(new Error("aborted"))),
        );
      }
      await req.log({ event: "SNAPSHOT_START" });
      await req.log({ event: "SNAPSHOT_END", details: "snapshot snap-1" });
      if (f.failNext) {
        const m = f.failNext;
        delete f.failNext;
        throw new FerryError("SNAPSHOT_DAMAGED", m);
      }
      await req.log({ event: "CONVERSION_START" });
      await req.log({ event: "CONVERSION_END" });
      await req.log({ event: "LAUNCH_START", targetInstanceID: req.instanceId });
      return {
        details: { target: "fake", location: `/fake/${req.instanceId}`, disks: [] },
        firstBoot: "WAITING",
        firstBootResult: Promise.resolve("SUCCEEDED" as const),
        postLaunchActions: [],
      };
    },
    async terminate(_id, d: LaunchedInstanceDetails) {
      f.terminated.push(d.location);
    },
    async releaseStagingResources(id) {
      f.released.push(id);
    },
    async close() {},
  };
  return f;
}

const agents = new Map<string, Credentials>();

async function launchableServer(t: TestPlane, identity: string): Promise<string> {
  await t.call("/InitializeService");
  const reg = await t.call("/ferry/agent/register", registration(identity));
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const id = reg.body.sourceServerID as string;
  const agent = reg.body.agentCredentials as Credentials;
  const rep = await t.call(
    "/ferry/agent/report",
    { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
    { creds: agent },
  );
  assert.equal(rep.status, 200, JSON.stringify(rep.body));
  assert.equal(rep.body.uninstall, undefined);
  agents.set(id, agent);
  return id;
}

async function server(t: TestPlane, id: string): Promise<SourceServer> {
  const r = await t.call("/DescribeSourceServers", { filters: { sourceServerIDs: [id] } });
  return (r.body.items as SourceServer[])[0]!;
}

async function waitJob(t: TestPlane, jobID: string): Promise<Job> {
  for (let i = 0; i < 200; i++) {
    const job = ((await t.call("/DescribeJobs", { filters: { jobIDs: [jobID] } })).body.items as Job[])[0]!;
    if (job.status === "COMPLETED") return job;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${jobID} did not complete`);
}

async function events(t: TestPlane, jobID: string): Promise<string[]> {
  const r = await t.call("/DescribeJobLogItems", { jobID });
  return (r.body.items as JobLog[]).map((l) => l.event!);
}

function expectConflict(r: { status: number; headers: Headers; body: Record<string, unknown> }, re: RegExp) {
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(r.headers.get("x-amzn-ErrorType"), "ConflictException");
  assert.match(r.body.message as string, re);
}

test("test launch, revert, relaunch, cutover, finalize, archive — with MGN's jobs and refusals", async () => {
  const launcher = fakeLauncher();
  const t = await createTestPlane({ launcher });
  try {
    const id = await launchableServer(t, "machine-launch-1");
    assert.equal((await server(t, id)).lifeCycle?.state, "READY_FOR_TEST");
    expectConflict(await t.call("/FinalizeCutover", { sourceServerID: id }), /CUTTING_OVER/);
    expectConflict(
      await t.call("/TerminateTargetInstances", { sourceServerIDs: [id] }),
      /no launched instance/,
    );

    const started = await t.call("/StartTest", { sourceServerIDs: [id], tags: { wave: "1" } });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const job = started.body.job as Job;
    assert.match(job.jobID, /^mgnjob-[0-9a-f]{17}$/);
    assert.equal(job.type, "LAUNCH");
    assert.equal(job.initiatedBy, "START_TEST");
    assert.equal(job.status, "PENDING");
    assert.deepEqual(job.participatingServers, [{ sourceServerID: id, launchStatus: "PENDING" }]);
    assert.equal((await server(t, id)).lifeCycle?.state, "TESTING");

    const done = await waitJob(t, job.jobID);
    assert.ok(done.endDateTime);
    const p = done.participatingServers![0]!;
    assert.equal(p.launchStatus, "LAUNCHED");
    assert.match(p.launchedEc2InstanceID!, /^i-[0-9a-f]{17}$/);
    assert.deepEqual(await events(t, job.jobID), [
      "JOB_START",
      "SNAPSHOT_START",
      "SNAPSHOT_END",
      "CONVERSION_START",
      "CONVERSION_END",
      "LAUNCH_START",
      "JOB_END",
    ]);
    assert.equal(launcher.launched[0]!.replicating, true);
    let s = await server(t, id);
    assert.equal(s.lifeCycle?.state, "TESTING");
    assert.equal(s.lifeCycle?.lastTest?.initiated?.jobID, job.jobID);
    assert.equal(s.launchedInstance?.ec2InstanceID, p.launchedEc2InstanceID);
    assert.equal(s.launchedInstance?.jobID, job.jobID);
    for (let i = 0; i < 100 && s.launchedInstance?.firstBoot !== "SUCCEEDED"; i++) {
      await new Promise((r) => setTimeout(r, 10));
      s = await server(t, id);
    }
    assert.equal(s.launchedInstance?.firstBoot, "SUCCEEDED");

    // Terminating is refused while TESTING; revert to ready for testing, then terminate.
    expectConflict(await t.call("/TerminateTargetInstances", { sourceServerIDs: [id] }), /TESTING/);
    const reverted = await t.call("/ChangeServerLifeCycleState", {
      sourceServerID: id,
      lifeCycle: { state: "READY_FOR_TEST" },
    });
    assert.equal(reverted.status, 200);
    assert.ok((reverted.body as SourceServer).lifeCycle?.lastTest?.reverted?.apiCallDateTime);
    const term = await t.call("/TerminateTargetInstances", { sourceServerIDs: [id] });
    assert.equal(term.status, 202, JSON.stringify(term.body));
    const termJob = await waitJob(t, (term.body.job as Job).jobID);
    assert.equal(termJob.type, "TERMINATE");
    assert.equal(termJob.initiatedBy, "TERMINATE");
    assert.equal(termJob.participatingServers![0]!.launchStatus, "TERMINATED");
    assert.deepEqual(await events(t, termJob.jobID), [
      "JOB_START",
      "CLEANUP_START",
      "CLEANUP_END",
      "JOB_END",
    ]);
    assert.deepEqual(launcher.terminated, [`/fake/${p.launchedEc2InstanceID}`]);
    assert.equal((await server(t, id)).launchedInstance, undefined);

    // Launch again; this time it fails, and the server is ready for a retry.
    launcher.failNext = "block 4096 of disk vda does not match its hash";
    const failed = await waitJob(
      t,
      ((await t.call("/StartTest", { sourceServerIDs: [id] })).body.job as Job).jobID,
    );
    assert.equal(failed.participatingServers![0]!.launchStatus, "FAILED");
    const items = (await t.call("/DescribeJobLogItems", { jobID: failed.jobID })).body.items as JobLog[];
    const lf = items.find((l) => l.event === "LAUNCH_FAILED");
    assert.match(lf?.eventData?.rawError ?? "", /block 4096/);
    assert.equal(lf?.eventData?.sourceServerID, id);
    assert.equal((await server(t, id)).lifeCycle?.state, "READY_FOR_TEST");

    // Test again, mark ready for cutover, cut over, finalize.
    await waitJob(t, ((await t.call("/StartTest", { sourceServerIDs: [id] })).body.job as Job).jobID);
    const ready = await t.call("/ChangeServerLifeCycleState", {
      sourceServerID: id,
      lifeCycle: { state: "READY_FOR_CUTOVER" },
    });
    assert.equal((ready.body as SourceServer).lifeCycle?.state, "READY_FOR_CUTOVER");
    assert.ok((ready.body as SourceServer).lifeCycle?.lastTest?.finalized);
    expectConflict(await t.call("/MarkAsArchived", { sourceServerID: id }), /DISCONNECTED or CUTOVER/);
    const cut = await t.call("/StartCutover", { sourceServerIDs: [id] });
    assert.equal(cut.status, 202);
    assert.equal((cut.body.job as Job).initiatedBy, "START_CUTOVER");
    assert.equal((await server(t, id)).lifeCycle?.state, "CUTTING_OVER");
    const cutJob = await waitJob(t, (cut.body.job as Job).jobID);
    assert.equal(cutJob.participatingServers![0]!.launchStatus, "LAUNCHED");
    // The earlier test instance was cleaned up by the new launch.
    assert.ok((await events(t, cutJob.jobID)).includes("CLEANUP_END"));
    expectConflict(await t.call("/StartTest", { sourceServerIDs: [id] }), /CUTTING_OVER/);

    const fin = await t.call("/FinalizeCutover", { sourceServerID: id });
    assert.equal(fin.status, 200, JSON.stringify(fin.body));
    const f = fin.body as SourceServer;
    assert.equal(f.lifeCycle?.state, "CUTOVER");
    assert.ok(f.lifeCycle?.lastCutover?.finalized?.apiCallDateTime);
    assert.equal(f.dataReplicationInfo?.dataReplicationState, "DISCONNECTED");
    for (let i = 0; i < 100 && !launcher.released.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(launcher.released, [id]);
    // The agent learns from its next report answer that it is done and uninstalls itself.
    const answer = await t.call(
      "/ferry/agent/report",
      { sourceServerID: id, dataReplicationState: "CONTINUOUS" },
      { creds: agents.get(id)! },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.desiredReplicationState, "DISCONNECTED");
    assert.equal(answer.body.uninstall, true);
    expectConflict(await t.call("/FinalizeCutover", { sourceServerID: id }), /CUTTING_OVER/);
    expectConflict(await t.call("/StartCutover", { sourceServerIDs: [id] }), /disconnected/);
    expectConflict(await t.call("/DisconnectFromService", { sourceServerID: id }), /already disconnected/);
    const archived = await t.call("/MarkAsArchived", { sourceServerID: id });
    assert.equal(archived.status, 200);
    assert.equal((archived.body as SourceServer).isArchived, true);

    // Jobs can be deleted once completed, with their log.
    assert.equal((await t.call("/DeleteJob", { jobID: job.jobID })).status, 204);
    assert.equal((await t.call("/DescribeJobLogItems", { jobID: job.jobID })).status, 404);
  } finally {
    await t.close();
  }
});

test("a server that has not finished its initial sync cannot be launched", async () => {
  const t = await createTestPlane({ launcher: fakeLauncher() });
  try {
    await t.call("/InitializeService");
    const reg = await t.call("/ferry/agent/register", registration("machine-launch-2"));
    const r = await t.call("/StartTest", { sourceServerIDs: [reg.body.sourceServerID] });
    expectConflict(r, /initial sync/);
    assert.deepEqual((await t.call("/DescribeJobs", {})).body.items, []);
    const missing = await t.call("/StartTest", { sourceServerIDs: ["s-0123456789abcdef0"] });
    assert.equal(missing.status, 404);
  } finally {
    await t.close();
  }
});

test("a job interrupted by a restart is marked failed on the next start, not left running", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-jobs-"));
  try {
    const launcher = fakeLauncher();
    launcher.hang = true;
    const first = await createTestPlane({ launcher, dataDir: dir });
    const id = await launchableServer(first, "machine-launch-3");
    const job = (await first.call("/StartTest", { sourceServerIDs: [id] })).body.job as Job;
    for (let i = 0; i < 100 && !launcher.launched.length; i++) await new Promise((r) => setTimeout(r, 10));
    // While it runs, the lifecycle is the job's.
    expectConflict(
      await first.call("/ChangeServerLifeCycleState", {
        sourceServerID: id,
        lifeCycle: { state: "READY_FOR_TEST" },
      }),
      /still running/,
    );
    expectConflict(await first.call("/StartTest", { sourceServerIDs: [id] }), /still running/);
    // A crash: the job record stays as the process left it.
    await first.cp.store.jobs.update(job.jobID, (j) => ({ ...j, status: "STARTED" }));
    const stored = await first.cp.store.sql.query<{ doc: string }>(`SELECT doc FROM jobs`);
    const serverRow = await first.cp.store.sql.query<{ doc: string }>(`SELECT doc FROM source_servers`);
    await first.close();
    // Put back what a killed process would have left: the job STARTED, the server TESTING.
    const again = await createTestPlane({ dataDir: dir });
    await again.cp.store.sql.run(`UPDATE jobs SET doc = $1`, [stored[0]!.doc]);
    const left = JSON.parse(serverRow[0]!.doc) as Record<string, unknown>;
    left.launchedInstance = { ec2InstanceID: "i-0123456789abcdef0", jobID: job.jobID, firstBoot: "WAITING" };
    await again.cp.store.sql.run(`UPDATE source_servers SET doc = $1`, [JSON.stringify(left)]);
    await again.cp.store.sql.run(`DELETE FROM job_log_items WHERE job_id = $1 AND doc LIKE '%JOB_END%'`, [
      job.jobID,
    ]);
    // A job another control plane on the same database runs: not this one's to fail.
    const theirs = {
      ...JSON.parse(stored[0]!.doc),
      jobID: "mgnjob-000000000000other",
      ferryRunner: "f".repeat(32),
    };
    await again.cp.store.jobs.insert(theirs.jobID, theirs, Date.now() + 1000);
    await again.close();

    const restarted = await createTestPlane({ launcher: fakeLauncher(), dataDir: dir });
    try {
      const listed = (await restarted.call("/DescribeJobs", {})).body.items as Job[];
      const after = listed.find((j) => j.jobID === job.jobID)!;
      assert.equal(listed.find((j) => j.jobID === theirs.jobID)?.status, "STARTED");
      assert.ok(
        listed.every((j) => !("ferryRunner" in j)),
        "runner bookkeeping leaked into DescribeJobs",
      );
      assert.equal(after.status, "COMPLETED");
      assert.equal(after.participatingServers![0]!.launchStatus, "FAILED");
      const items = (await restarted.call("/DescribeJobLogItems", { jobID: job.jobID })).body
        .items as JobLog[];
      assert.match(items.at(-2)?.eventData?.rawError ?? "", /restarted/);
      assert.equal(items.at(-1)?.event, "JOB_END");
      const after2 = await server(restarted, id);
      assert.equal(after2.lifeCycle?.state, "READY_FOR_TEST");
      assert.equal(after2.launchedInstance?.firstBoot, "UNKNOWN");
    } finally {
      await restarted.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
