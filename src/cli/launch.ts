/**
 * `ferry launch settings|log`: Ferry's launch settings of a source server (the
 * `ferry` member of its launch configuration, which MGN clients cannot send)
 * and a launch job's log with Ferry's details. Launches themselves are
 * started with MGN's StartTest / StartCutover (aws mgn, the SDK).
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";
import { writeJson, writeLine } from "./context.ts";
import type { StoreFlags } from "./server.ts";
import { addStoreOptions } from "./server.ts";
import { FerryError } from "../lib/errors.ts";
import { silentLogger } from "../lib/log.ts";
import { FerryLaunchSettings } from "../model/launch.ts";
import type { Accelerator, FerryLaunchConfiguration } from "../model/launch.ts";

interface SettingsFlags extends StoreFlags {
  target?: string;
  imageFormat?: string;
  memory?: string;
  accelerator?: string;
  bootMarker?: string;
  bootTimeout?: string;
  snapshotTimeout?: string;
  json?: boolean;
}

async function openPlane(o: StoreFlags) {
  const { createControlPlane } = await import("../control/index.ts");
  return createControlPlane({
    dataDir: o.dataDir,
    region: o.region,
    logger: silentLogger,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
  });
}

function integer(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n)) throw new FerryError("USAGE", `${flag} '${text}' must be a whole number.`);
  return n;
}

export function registerLaunch(program: Command, ctx: CliContext): void {
  const noun = program
    .command("launch")
    .description("Launch settings and launch job logs (start launches with StartTest/StartCutover)");
  addStoreOptions(
    noun
      .command("settings <sourceServerID>")
      .description(
        "Show or change Ferry's launch settings of a source server (target, image format, boot marker, …)",
      )
      .option("--target <name>", "launch target: image, qemu, …")
      .option("--image-format <format>", "raw or qcow2 (image target)")
      .option("--memory <MiB>", "guest memory (qemu target)")
      .option("--accelerator <name>", "auto, kvm or tcg (software emulation) (qemu target)")
      .option("--boot-marker <text>", "console text that means booted (qemu target)")
      .option("--boot-timeout <seconds>", "first boot UNKNOWN after this (qemu target)")
      .option("--snapshot-timeout <seconds>", "how long to wait for a fresh snapshot")
      .option("--json", "print the launch configuration as JSON"),
    ctx,
  ).action(async (id: string, o: SettingsFlags) => {
    const change: FerryLaunchSettings = {};
    if (o.target !== undefined) change.target = o.target;
    if (o.imageFormat !== undefined) change.imageFormat = o.imageFormat as "raw" | "qcow2";
    if (o.accelerator !== undefined) change.accelerator = o.accelerator as Accelerator;
    const memory = integer("--memory", o.memory);
    if (memory !== undefined) change.memoryMiB = memory;
    if (o.bootMarker !== undefined) change.bootMarker = o.bootMarker;
    const boot = integer("--boot-timeout", o.bootTimeout);
    if (boot !== undefined) change.bootTimeoutSeconds = boot;
    const snap = integer("--snapshot-timeout", o.snapshotTimeout);
    if (snap !== undefined) change.snapshotTimeoutSeconds = snap;
    const cp = await openPlane(o);
    try {
      let lc: FerryLaunchConfiguration | undefined;
      if (Object.keys(change).length) {
        const next = await cp.store.sourceServers.update(id, (r) => {
          const current = (r.launchConfiguration as FerryLaunchConfiguration).ferry ?? {};
          const parsed = FerryLaunchSettings.safeParse({ ...current, ...change });
          if (!parsed.success)
            throw new FerryError(
              "BAD_LAUNCH_SETTINGS",
              `Launch settings refused: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}.`,
            );
          return { ...r, launchConfiguration: { ...r.launchConfiguration, ferry: parsed.data } };
        });
        lc = next?.launchConfiguration;
      } else lc = (await cp.store.sourceServers.get(id))?.launchConfiguration;
      if (!lc)
        throw new FerryError(
          "NOT_FOUND",
          `No source server ${id} in this control plane's store (--data-dir ${o.dataDir}).`,
        );
      if (o.json) return writeJson(ctx.stdout, lc);
      const f = (lc as FerryLaunchConfiguration).ferry ?? {};
      writeLine(
        ctx.stdout,
        `${id}: target ${f.target ?? "(default: image)"}, launchDisposition ${lc.launchDisposition ?? "STARTED"}`,
      );
      for (const [k, v] of Object.entries(f))
        if (k !== "target") writeLine(ctx.stdout, `  ${k}: ${String(v)}`);
    } finally {
      await cp.close();
    }
  });
  addStoreOptions(
    noun
      .command("log <jobID>")
      .description(
        "A job's log items, with Ferry's details (snapshot, image paths, post-launch action output)",
      )
      .option("--json", "print MGN JobLog objects"),
    ctx,
  ).action(async (jobID: string, o: StoreFlags & { json?: boolean }) => {
    const cp = await openPlane(o);
    try {
      const job = await cp.store.jobs.get(jobID);
      if (!job)
        throw new FerryError(
          "NOT_FOUND",
          `No job ${jobID} in this control plane's store (--data-dir ${o.dataDir}).`,
        );
      const items = await cp.store.jobLogItems(jobID);
      if (o.json) return writeJson(ctx.stdout, { job, items });
      writeLine(ctx.stdout, `${jobID} ${job.type} ${job.initiatedBy} ${job.status}`);
      for (const i of items) {
        const d = i.eventData as (typeof i.eventData & { details?: string }) | undefined;
        const extra = [d?.sourceServerID, d?.targetInstanceID, d?.rawError].filter(Boolean).join(" ");
        writeLine(ctx.stdout, `${i.logDateTime} ${i.event}${extra ? ` ${extra}` : ""}`);
        if (d?.details) for (const l of d.details.split("\n")) writeLine(ctx.stdout, `    ${l}`);
      }
    } finally {
      await cp.close();
    }
  });
}
