/**
 * `ferry demo`: the migration job end to end on embedded defaults, as an
 * operator meets it. `ferry up` (control plane + a local replicator that
 * joins it), InitializeService, the agent package published to the control
 * plane and installed from there by ferry-installer-init with an install key
 * (demo-install.ts: disks, a CSR for the per-server certificate), the agent
 * service replicating to the
 * replicator the control plane assigned, the server reaching CONTINUOUS in the
 * MGN API, a block-for-block verification of the replica, then a test launch,
 * a cutover and finalize (demo-launch.ts), after which the agent uninstalls
 * itself.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { FerryError } from "../lib/errors.ts";
import { createLogger, silentLogger } from "../lib/log.ts";
import { formatBytes, formatDuration, parseSize } from "../lib/units.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { type DemoOptions, buildSampleDisk } from "./demo.ts";
import { startEmbedded } from "./embedded.ts";
import { demoLaunch } from "./demo-launch.ts";
import { demoInstall, showSourceServerList } from "./demo-install.ts";

const run = promisify(execFile);

export async function fullDemo(opts: DemoOptions, ctx: CliContext): Promise<void> {
  const { DescribeSourceServersCommand, InitializeServiceCommand, MgnClient } =
    await import("@aws-sdk/client-mgn");
  const { NodeHttpHandler } = await import("@smithy/node-http-handler");
  const { loadAgentConfig } = await import("../agent/install.ts");
  const { runAgent } = await import("../agent/service.ts");
  const { diskIdFor } = await import("../agent/replication-driver.ts");
  const { hashDisk } = await import("../agent/hash-disk.ts");
  const { verifyVolume } = await import("../replicator/verify.ts");

  const size = parseSize(opts.size);
  if (size < 16 * 1024 * 1024) throw new FerryError("USAGE", "--size must be at least 16M");
  const work = opts.workDir ?? (await mkdtemp(join(tmpdir(), "ferry-demo-")));
  const say = (s: string) => {
    if (!opts.json) writeLine(ctx.stderr, s);
  };
  const started = performance.now();
  const log = opts.json ? silentLogger : createLogger({ stream: ctx.stderr, level: "error" });
  let up: Awaited<ReturnType<typeof startEmbedded>> | undefined;
  const agentStop = new AbortController();
  let agentRun: Promise<unknown> | undefined;
  try {
    say(`1. building a ${formatBytes(size)} ext4 source disk (mke2fs -d, real files) in ${work}`);
    const disk = await buildSampleDisk(work, size);

    say("2. ferry up: the control plane (HTTPS, MGN API) and a local replicator that joins it");
    up = await startEmbedded({
      dataDir: join(work, "ferry"),
      listen: { host: "127.0.0.1", port: 0 },
      replicatorListen: { host: "127.0.0.1", port: 0 },
      region: "us-east-1",
      reportIntervalSeconds: 2,
      log,
    });
    say(`   endpoint ${up.endpoint}, replicator ${up.replicator} (${up.replicatorId})`);
    const mgn = new MgnClient({
      endpoint: up.endpoint,
      region: up.region,
      credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: await readFile(up.caFile) }) }),
    });
    await mgn.send(new InitializeServiceCommand({}));

    const { stateDir, ...installed } = await demoInstall({
      work,
      endpoint: up.endpoint,
      region: up.region,
      caFile: up.caFile,
      operator: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
      createInstallKey: () => up!.controlPlane.accessKeys.create("install", "ferry demo installer"),
      disk,
      say,
    });

    say("4. agent run: replicate to the assigned replicator, report to the control plane");
    agentRun = runAgent({
      config: await loadAgentConfig(stateDir),
      stateDir,
      tracker: "scan",
      // A small disk: a pass every 2 s, so the idle disk reaches fresh consistency points the launches use.
      scanIntervalSeconds: 2,
      consistencyIntervalSeconds: 2,
      signal: agentStop.signal,
      log,
    });
    agentRun.catch(() => {});
    let last = "";
    let server;
    const deadline = Date.now() + 180_000;
    for (;;) {
      server = (
        await mgn.send(
          new DescribeSourceServersCommand({ filters: { sourceServerIDs: [installed.sourceServerID] } }),
        )
      ).items?.[0];
      const info = server?.dataReplicationInfo;
      const d = info?.replicatedDisks?.[0];
      const line =
        `   ${server?.lifeCycle?.state} / ${info?.dataReplicationState}` +
        (d
          ? `  ${formatBytes(d.replicatedStorageBytes ?? 0)} of ${formatBytes(d.totalStorageBytes ?? 0)}`
          : "") +
        (info?.dataReplicationError
          ? `  ${info.dataReplicationError.error}: ${info.dataReplicationError.rawError}`
          : "");
      if (line !== last) say(line);
      last = line;
      if (info?.dataReplicationState === "CONTINUOUS") break;
      if (Date.now() > deadline) {
        throw new FerryError(
          "DEMO_TIMEOUT",
          `the source server did not reach CONTINUOUS in 3 minutes (last: ${line.trim()})`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }

    say("5. status as operators see it:");
    const info = server?.dataReplicationInfo;
    say(
      `   ${installed.sourceServerID}  lifeCycle ${server?.lifeCycle?.state}  replication ${info?.dataReplicationState}  lag ${info?.lagDuration ?? "-"}  replicator ${up.replicatorId}`,
    );
    if (!opts.json) await showSourceServerList(join(work, "ferry", "server"), say);
    const awsCli = await run("aws", ["--version"]).then(
      () => true,
      () => false,
    );
    if (awsCli && !opts.json) {
      const { stdout } = await run(
        "aws",
        [
          "mgn",
          "describe-source-servers",
          "--endpoint-url",
          up.endpoint,
          "--ca-bundle",
          up.caFile,
          "--region",
          up.region,
          "--query",
          "items[].{id:sourceServerID,lifeCycle:lifeCycle.state,replication:dataReplicationInfo.dataReplicationState,lag:dataReplicationInfo.lagDuration}",
          "--output",
          "table",
        ],
        {
          env: {
            ...process.env,
            AWS_ACCESS_KEY_ID: up.accessKeyId,
            AWS_SECRET_ACCESS_KEY: up.secretAccessKey,
          },
        },
      );
      say(
        `   aws mgn describe-source-servers --endpoint-url ${up.endpoint} --ca-bundle … --region ${up.region}`,
      );
      for (const l of stdout.trimEnd().split("\n")) say(`   ${l}`);
    }

    say("6. verify: every block of the source against the replica");
    const report = await verifyVolume(
      up.replicatorDataDir,
      installed.sourceServerID,
      diskIdFor(disk),
      await hashDisk(disk),
    );
    const launched = await demoLaunch(mgn, up, installed.sourceServerID, disk, say);
    say("10. the agent hears it was cut over: it stops, removes its service and state, and acknowledges");
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      agentRun,
      new Promise((r) => (timer = setTimeout(r, 60_000, "still running after 60 s"))),
    ]);
    clearTimeout(timer);
    const stateLeft = await stat(stateDir).then(
      () => true,
      () => false,
    );
    const agentUninstalled = ended === "uninstalled" && !stateLeft;
    say(
      agentUninstalled
        ? `   the agent uninstalled itself (${stateDir} removed); the control plane revoked its keys`
        : `   the agent did NOT uninstall itself (${String(ended)}${stateLeft ? `, ${stateDir} still there` : ""})`,
    );
    const seconds = (performance.now() - started) / 1000;
    const summary = {
      launch: launched,
      agentUninstalled,
      identical: report.ok,
      bytes: report.diskSize,
      seconds,
      blocks: report.blocks,
      differentBlocks: report.differentBlocks,
      damagedBlocks: report.damagedBlocks,
      sourceServerId: installed.sourceServerID,
      lifeCycleState: server?.lifeCycle?.state ?? null,
      dataReplicationState: server?.dataReplicationInfo?.dataReplicationState ?? null,
      replicatorId: up.replicatorId,
      workDir: opts.keep ? work : null,
    };
    if (opts.json) writeJson(ctx.stdout, summary);
    else {
      writeLine(
        ctx.stdout,
        `${installed.sourceServerID}: reached ${summary.lifeCycleState} / ${summary.dataReplicationState}; ${formatBytes(report.diskSize)} replicated, ${report.blocks} blocks compared — ${report.ok ? "the replica is byte-identical to the source" : `${report.differentBlocks} differ, ${report.damagedBlocks} damaged`}; launched, cut over and finalized: ${launched.lifeCycleState} (${formatDuration(seconds)})`,
      );
      if (opts.keep) writeLine(ctx.stdout, `work directory kept: ${work}`);
    }
    mgn.destroy();
    if (!report.ok || !agentUninstalled) ctx.exitCode = 1;
  } finally {
    agentStop.abort();
    await agentRun?.catch(() => {});
    await up?.close();
    if (!opts.keep && !opts.workDir) await rm(work, { recursive: true, force: true });
  }
}
