/**
 * The end of `ferry demo`: a test launch of the replicated sample server, a
 * cutover, and finalize — through the MGN API as an operator drives it. The
 * sample disk is a plain ext4 image, not bootable, so the embedded default
 * launch target (`image`) fits: each launch writes the snapshot to a raw
 * image file, which the demo compares with the source disk.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { MgnClient } from "@aws-sdk/client-mgn";
import { FerryError } from "../lib/errors.ts";
import type { Embedded } from "./embedded.ts";

export interface DemoLaunchResult {
  testInstanceId: string;
  cutoverInstanceId: string;
  imagePath: string;
  imageMatchesSource: boolean;
  lifeCycleState: string;
  /** Launches that took a fresh snapshot (SNAPSHOT_END) rather than using the previous one. */
  freshSnapshots: number;
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

export async function demoLaunch(
  mgn: MgnClient,
  up: Embedded,
  sourceServerID: string,
  sourceDisk: string,
  say: (line: string) => void,
): Promise<DemoLaunchResult> {
  const m = await import("@aws-sdk/client-mgn");
  const waitJob = async (jobID: string) => {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const job = (await mgn.send(new m.DescribeJobsCommand({ filters: { jobIDs: [jobID] } }))).items?.[0];
      if (job?.status === "COMPLETED") return job;
      if (Date.now() > deadline)
        throw new FerryError("DEMO_TIMEOUT", `job ${jobID} did not complete in 3 minutes`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  let freshSnapshots = 0;
  const launch = async (kind: "test" | "cutover") => {
    const out =
      kind === "test"
        ? await mgn.send(new m.StartTestCommand({ sourceServerIDs: [sourceServerID] }))
        : await mgn.send(new m.StartCutoverCommand({ sourceServerIDs: [sourceServerID] }));
    const jobID = out.job!.jobID!;
    say(`   ${jobID} (${out.job?.type} ${out.job?.initiatedBy}) ${out.job?.status}`);
    const job = await waitJob(jobID);
    const items = (await mgn.send(new m.DescribeJobLogItemsCommand({ jobID }))).items ?? [];
    say(`   log: ${items.map((i) => i.event).join(" → ")}`);
    if (items.some((i) => i.event === "SNAPSHOT_END")) freshSnapshots++;
    const p = job.participatingServers?.[0];
    if (p?.launchStatus !== "LAUNCHED") {
      const failed = items.find((i) => i.event === "LAUNCH_FAILED");
      throw new FerryError(
        "DEMO_LAUNCH_FAILED",
        `the ${kind} launch did not succeed (${p?.launchStatus}): ${failed?.eventData?.rawError ?? "see the job log"}`,
      );
    }
    const rec = await up.controlPlane.store.sourceServers.get(sourceServerID);
    const disk = rec?.launchedInstance?.ferry?.disks[0];
    say(
      `   instance ${p.launchedEc2InstanceID}: ${disk?.path} (${disk?.format}, from snapshot ${disk?.snapshotId})`,
    );
    return { instanceId: p.launchedEc2InstanceID!, imagePath: disk?.path ?? "" };
  };

  // The idle sample disk reaches a consistent point after a whole scan pass that found nothing new.
  await up.controlPlane.store.sourceServers.update(sourceServerID, (r) => ({
    ...r,
    launchConfiguration: { ...r.launchConfiguration, ferry: { target: "image", snapshotTimeoutSeconds: 20 } },
  }));
  say("7. test launch: StartTest → a LAUNCH job; the image target writes the snapshot to a raw image");
  const test = await launch("test");
  const matches = (await sha256(test.imagePath)) === (await sha256(sourceDisk));
  say(`   the launched image ${matches ? "is byte-identical to" : "DIFFERS from"} the source disk`);
  say("8. mark ready for cutover, then cutover: StartCutover → CUTTING_OVER → a second LAUNCH job");
  await mgn.send(
    new m.ChangeServerLifeCycleStateCommand({ sourceServerID, lifeCycle: { state: "READY_FOR_CUTOVER" } }),
  );
  const cut = await launch("cutover");
  say("9. finalize: FinalizeCutover → CUTOVER; replication stops and the staging volumes are released");
  const fin = await mgn.send(new m.FinalizeCutoverCommand({ sourceServerID }));
  say(
    `   ${sourceServerID}: lifeCycle ${fin.lifeCycle?.state}, replication ${fin.dataReplicationInfo?.dataReplicationState}`,
  );
  return {
    testInstanceId: test.instanceId,
    cutoverInstanceId: cut.instanceId,
    imagePath: cut.imagePath,
    imageMatchesSource: matches,
    lifeCycleState: fin.lifeCycle?.state ?? "",
    freshSnapshots,
  };
}
