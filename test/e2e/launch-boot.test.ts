/**
 * A launched copy boots: a small bootable Linux disk built from Debian
 * packages is the source, replicated by the agent's sync engine to a real
 * replicator (its initial sync leaves a snapshot in the staging store), and the
 * MGN API — driven by the AWS CLI and @aws-sdk/client-mgn against a real
 * HTTPS control plane — launches a test instance with the `qemu` target. The
 * marker the disk's /init prints shows on the console and first boot turns
 * SUCCEEDED; reverting the test stops qemu and removes the instance.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { startServer } from "../../src/control/index.ts";
import { createLauncher } from "../../src/launch/index.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { registration } from "../../src/control/testing.ts";
import { createScratch } from "../support/loop.ts";
import { buildBootableDisk, BOOT_MARKER } from "../support/bootable-disk.ts";
import { startTestReplicator } from "../support/data-plane.ts";
import { replicateDisk } from "../../src/agent/sync.ts";
import { ScanTracker } from "../../src/agent/tracker/index.ts";
import { agentCall, awsCliDriver, sdkDriver } from "./control-plane-drivers.ts";
import { chooseAccelerator, readHostVirtualization } from "../../src/launch/targets/qemu.ts";

const run = promisify(execFile);

async function available(cmd: string, arg = "--version"): Promise<boolean> {
  return run(cmd, [arg]).then(
    () => true,
    () => false,
  );
}

test("a test launch of a bootable disk boots under qemu: marker on the console, first boot SUCCEEDED, revert removes it", async (t) => {
  if (!(await available("qemu-system-x86_64"))) {
    t.skip("qemu-system-x86_64 not installed (scripts/install-debs.sh installs it)");
    return;
  }
  const s = await createScratch("ferry-launch-boot-");
  try {
    const disk = await buildBootableDisk(join(s.dir, "source.img"), "boot-test-disk");
    const rep = await startTestReplicator(join(s.dir, "replicator"));
    s.defer(() => rep.replicator.close());
    const launcher = createLauncher({
      dataDir: join(s.dir, "launch"),
      catalog: rep.replicator.catalog,
      logger: silentLogger,
    });
    s.defer(() => launcher.close());
    const server = await startServer({
      dataDir: join(s.dir, "server"),
      port: 0,
      region: "eu-west-1",
      logger: silentLogger,
      launcher,
    });
    s.defer(() => server.close());
    const operator = await server.controlPlane.accessKeys.create("operator", "launch test");
    const ep = { url: server.url, caFile: server.caFile, region: "eu-west-1" };
    const cli = awsCliDriver(ep, operator);
    const sdk = sdkDriver(ep, operator);
    s.defer(async () => sdk.destroy());

    await sdk.call("InitializeService");
    const reg = await agentCall(ep, operator, "/ferry/agent/register", registration("boot-test-machine"));
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const id = reg.body.sourceServerID as string;
    const agent = reg.body.agentCredentials as { accessKeyId: string; secretAccessKey: string };
    const reported = await agentCall(ep, agent, "/ferry/agent/report", {
      sourceServerID: id,
      dataReplicationState: "CONTINUOUS",
    });
    assert.equal(reported.status, 200, JSON.stringify(reported.body));
    // The agent side: initial sync, then continuous replication with consistency points.
    const agentStop = new AbortController();
    const tracker = new ScanTracker({ devicePath: disk, stateDir: join(s.dir, "tracker"), intervalMs: 0 });
    const sync = replicateDisk({
      sourcePath: disk,
      sourceServerId: id,
      diskId: "vda",
      endpoint: rep.endpoint,
      stateDir: join(s.dir, "agent"),
      signal: agentStop.signal,
      continuous: { tracker, consistencyIntervalMs: 500 },
    });
    sync.catch(() => {});
    s.defer(async () => {
      agentStop.abort();
      await sync.catch(() => undefined);
    });
    for (let i = 0; i < 240 && !(await rep.replicator.catalog.list(id)).length; i++)
      await new Promise((r) => setTimeout(r, 250));
    assert.ok((await rep.replicator.catalog.list(id)).length >= 1, "the initial sync left a snapshot");

    // Ferry's launch settings ride in the launch configuration (MGN clients ignore the member).
    const upd = await agentCall(ep, operator, "/UpdateLaunchConfiguration", {
      sourceServerID: id,
      launchDisposition: "STARTED",
      ferry: { target: "qemu", bootMarker: BOOT_MARKER, bootTimeoutSeconds: 100, snapshotTimeoutSeconds: 5 },
    });
    assert.equal(upd.status, 200, JSON.stringify(upd.body));
    assert.equal((upd.body.ferry as { target: string }).target, "qemu");
    assert.equal(
      (await cli.call("GetLaunchConfiguration", { sourceServerID: id })).launchDisposition,
      "STARTED",
    );

    const started = await cli.call("StartTest", { sourceServerIDs: [id] });
    const jobID = (started.job as { jobID: string }).jobID;
    let job: Record<string, unknown> | undefined;
    for (let i = 0; i < 120; i++) {
      job = (
        (await sdk.call("DescribeJobs", { filters: { jobIDs: [jobID] } })).items as Record<string, unknown>[]
      )[0];
      if (job?.status === "COMPLETED") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(job?.status, "COMPLETED");
    const ps = (job!.participatingServers as { launchStatus: string; launchedEc2InstanceID: string }[])[0]!;
    assert.equal(ps.launchStatus, "LAUNCHED", JSON.stringify(job));

    let srv: Record<string, unknown> | undefined;
    for (let i = 0; i < 240; i++) {
      srv = (
        (await sdk.call("DescribeSourceServers", { filters: { sourceServerIDs: [id] } })).items as Record<
          string,
          unknown
        >[]
      )[0];
      const fb = (srv?.launchedInstance as { firstBoot?: string } | undefined)?.firstBoot;
      if (fb && fb !== "WAITING") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const launched = srv!.launchedInstance as { ec2InstanceID: string; jobID: string; firstBoot: string };
    assert.equal(launched.ec2InstanceID, ps.launchedEc2InstanceID);
    assert.equal(launched.jobID, jobID);
    const record = (await server.controlPlane.store.sourceServers.get(id))!;
    const consoleLog = record.launchedInstance?.ferry?.consoleLog ?? "";
    const console = await readFile(consoleLog, "utf8").catch(() => "(no console log)");
    // KVM only where an ordinary guest runs under it (a PVM host's /dev/kvm hangs this kernel silently).
    const accel = chooseAccelerator("auto", await readHostVirtualization());
    assert.deepEqual(record.launchedInstance?.ferry?.accelerator, accel);
    assert.equal(
      launched.firstBoot,
      "SUCCEEDED",
      `${accel.name}: ${console.slice(-3000) || "(empty console)"}`,
    );
    assert.match(console, new RegExp(`${BOOT_MARKER} boot-test-disk kernel `));

    const events = ((await cli.call("DescribeJobLogItems", { jobID })).items as { event: string }[]).map(
      (e) => e.event,
    );
    // A fresh snapshot when a consistency point comes in time; an idle source may bring none, and
    // then the newest existing snapshot (the same data: nothing changed) is used.
    const snapshot = events.includes("SNAPSHOT_END")
      ? ["SNAPSHOT_END"]
      : ["SNAPSHOT_FAIL", "USING_PREVIOUS_SNAPSHOT"];
    assert.deepEqual(events, [
      "JOB_START",
      "SNAPSHOT_START",
      ...snapshot,
      "CONVERSION_START",
      "CONVERSION_END",
      "LAUNCH_START",
      "JOB_END",
    ]);

    // Revert the test: back to ready for testing, then terminate the instance.
    await cli.call("ChangeServerLifeCycleState", {
      sourceServerID: id,
      lifeCycle: { state: "READY_FOR_TEST" },
    });
    const term = await sdk.call("TerminateTargetInstances", { sourceServerIDs: [id] });
    const termID = (term.job as { jobID: string }).jobID;
    for (let i = 0; i < 60; i++) {
      job = (
        (await sdk.call("DescribeJobs", { filters: { jobIDs: [termID] } })).items as Record<string, unknown>[]
      )[0];
      if (job?.status === "COMPLETED") break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal((job!.participatingServers as { launchStatus: string }[])[0]!.launchStatus, "TERMINATED");
    assert.equal(existsSync(record.launchedInstance!.ferry!.location), false);
    const pid = record.launchedInstance!.ferry!.pid!;
    assert.equal(
      existsSync(`/proc/${pid}`) && (await readFile(`/proc/${pid}/cmdline`, "utf8")).includes("qemu"),
      false,
    );
  } finally {
    await s.cleanup();
  }
});
