/** `ferry lab up|down|status`: the reference private-network setup on this machine (src/net/lab). */
import type { Command } from "commander";
import { FerryError } from "../lib/errors.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";

function replicatorCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 8)
    throw new FerryError("USAGE", `--replicators '${text}' must be a whole number from 1 to 8`);
  return n;
}

function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new FerryError("USAGE", `--agent-not-seen-after '${text}' must be a positive number of seconds`);
  return n;
}

export function registerLab(program: Command, ctx: CliContext): void {
  const lab = program
    .command("lab")
    .description(
      "the reference private network on this machine: namespaces, firewall rules, hosts files, services",
    );

  lab
    .command("up")
    .description(
      "build a source network and a staging network joined by a private link, and start the object store, the control plane and the replicators in them (root)",
    )
    .option("--replicators <n>", "replicators in the staging network", replicatorCount, 1)
    .option("--region <region>", "the control plane's region", "us-east-1")
    .option(
      "--agent-not-seen-after <seconds>",
      "the control plane's --agent-not-seen-after (a silent agent shows AGENT_NOT_SEEN)",
      seconds,
      60,
    )
    .option("--no-publish", "do not build and publish the agent package to the object store")
    .option("--network-only", "build the networks, rules and hosts files only; start no service")
    .option("--json", "print the lab's state as JSON")
    .action(
      async (o: {
        replicators: number;
        region: string;
        agentNotSeenAfter: number;
        publish: boolean;
        networkOnly?: boolean;
        json?: boolean;
      }) => {
        const { startLab, requireRoot } = await import("../net/lab/index.ts");
        requireRoot();
        const services = !o.networkOnly;
        const l = await startLab({
          replicators: o.replicators,
          region: o.region,
          agentNotSeenAfterSeconds: o.agentNotSeenAfter,
          services,
          env: ctx.env,
        });
        if (services && o.publish) {
          try {
            await l.publishAgentPackage();
          } catch (err) {
            await l.close();
            throw err;
          }
        }
        if (o.json) return writeJson(ctx.stdout, l.state);
        const { describeLab } = await import("../net/lab/describe.ts");
        for (const line of describeLab(l.state)) writeLine(ctx.stdout, line);
      },
    );

  lab
    .command("down")
    .description(
      "tear a lab down by its state file (without an id: labs made by `ferry lab up` and labs whose test run is gone); harmless when nothing is left",
    )
    .argument("[id]", "the lab to remove")
    .option(
      "--all",
      "also labs whose owning test run is still alive, and lab namespaces no state file claims",
    )
    .option("--json", "print what was removed as JSON")
    .action(async (id: string | undefined, o: { all?: boolean; json?: boolean }) => {
      const { requireRoot } = await import("../net/lab/index.ts");
      const { downLabs } = await import("../net/lab/describe.ts");
      requireRoot();
      const result = await downLabs({ ...(id ? { id } : {}), all: Boolean(o.all), env: ctx.env });
      if (o.json) writeJson(ctx.stdout, result);
      else {
        for (const r of result.labs)
          writeLine(
            ctx.stdout,
            `lab ${r.id}: ${r.namespaces.length} namespaces, ${r.killed.length} processes, ${r.loops.length} loop devices removed${r.errors.length ? `; left: ${r.errors.join("; ")}` : ""}`,
          );
        for (const ns of result.orphanNamespaces) writeLine(ctx.stdout, `orphan namespace ${ns} removed`);
        for (const s of result.skipped)
          writeLine(ctx.stdout, `lab ${s} skipped: its test run is alive (--all)`);
        if (!result.labs.length && !result.orphanNamespaces.length) writeLine(ctx.stdout, "no lab to remove");
      }
      if (result.labs.some((r) => r.errors.length)) ctx.exitCode = 1;
    });

  lab
    .command("status")
    .description("the labs that are up: namespaces, addresses, endpoints, processes, knobs turned")
    .argument("[id]", "one lab")
    .option("--json", "print the state files as JSON")
    .action(async (id: string | undefined, o: { json?: boolean }) => {
      const { labStatus, describeLab } = await import("../net/lab/describe.ts");
      const labs = await labStatus(id, ctx.env);
      if (o.json) return writeJson(ctx.stdout, { labs });
      if (!labs.length) return writeLine(ctx.stdout, id ? `no lab ${id}` : "no lab is up");
      for (const l of labs) {
        for (const line of describeLab(l.state)) writeLine(ctx.stdout, line);
        for (const p of l.processes)
          writeLine(ctx.stdout, `  process ${p.name} (pid ${p.pid}): ${p.running ? "running" : "gone"}`);
        writeLine(ctx.stdout);
      }
    });
}
