/**
 * `ferry agent install|disks|run`: what ferry-installer-init hands over to
 * (choose disks, register, install the service) and the installed agent's
 * service loop. The logic lives in src/agent (install.ts, service.ts, disks.ts).
 */
import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import type { BlockDisk } from "../agent/disks.ts";
import { FerryError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { formatBytes } from "../lib/units.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";

/** Repeatable option values. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--tags KEY=VALUE` (repeatable, or comma-separated) → a tags map. */
export function parseTags(specs: string[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const spec of specs.flatMap((s) => s.split(","))) {
    if (spec.trim() === "") continue;
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new FerryError("BAD_TAG", `--tags "${spec}" is not KEY=VALUE`);
    tags[spec.slice(0, eq).trim()] = spec.slice(eq + 1).trim();
  }
  return tags;
}

/** The package (or checkout) this CLI runs from: the default install dir of `ferry agent install`. */
const PACKAGE_ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

function describeDisk(d: BlockDisk): string {
  return `${d.deviceName}  ${formatBytes(d.bytes)}${d.root ? "  (root disk, always replicated)" : ""}`;
}

/** The interactive choice, as MGN's installer asks it; Enter = every disk. */
async function promptForDisks(ctx: CliContext, disks: BlockDisk[]): Promise<string[] | undefined> {
  if (!process.stdin.isTTY) {
    throw new FerryError(
      "NO_TERMINAL",
      "cannot ask which disks to replicate: no terminal on stdin. Pass --devices /dev/sda,/dev/sdb or --no-prompt (every disk)",
    );
  }
  writeLine(ctx.stdout, "Disks on this server:");
  for (const d of disks) writeLine(ctx.stdout, `  ${describeDisk(d)}`);
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: ctx.stdout });
  try {
    const answer = await rl.question(
      "Choose the disks to replicate, comma-separated (for example /dev/sda,/dev/sdb); press Enter for all disks: ",
      { signal: ctx.signal },
    );
    const list = answer
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    return list.length ? list : undefined;
  } finally {
    rl.close();
  }
}

/** Adds install, disks and run to the `agent` command. */
export function registerAgentInstall(agent: Command, ctx: CliContext): void {
  agent
    .command("disks")
    .description("list this machine's disks with their sizes and which holds the root filesystem")
    .option("--json", "print the list as JSON")
    .action(async (opts: { json?: boolean }) => {
      const { listDisks } = await import("../agent/disks.ts");
      // FERRY_SYS_ROOT: the same /sys and /proc `agent install` reads (a lab host, a test).
      const disks = await listDisks({ root: ctx.env.FERRY_SYS_ROOT });
      if (opts.json) writeJson(ctx.stdout, { disks });
      else for (const d of disks) writeLine(ctx.stdout, describeDisk(d));
    });

  agent
    .command("install")
    .description(
      "register this server with the control plane and install the agent service (run by ferry-installer-init)",
    )
    .requiredOption("--endpoint <url>", "the control plane, https://host[:port]")
    .option(
      "--region <region>",
      "the control plane's region",
      ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION,
    )
    .option("--aws-access-key-id <id>", "install-scoped access key (default: $AWS_ACCESS_KEY_ID)")
    .option("--aws-secret-access-key <secret>", "its secret (default: $AWS_SECRET_ACCESS_KEY)")
    .option("--aws-session-token <token>", "session token (default: $AWS_SESSION_TOKEN)")
    .option("--ca-file <pem>", "CA certificate of the control plane")
    .option("--ca-fingerprint <sha256>", "pin the control plane's CA by its SHA-256 fingerprint")
    .option("--resolve <NAME=IP>", "static name resolution, repeatable", collect, [])
    .option("--devices <list>", "disks to replicate, comma-separated (the root disk is always added)")
    .option("--no-prompt", "do not ask which disks: replicate --devices, or every disk")
    .option(
      "--force-volumes",
      "with --no-prompt and --devices: replicate exactly those, without disk discovery (the root disk is not added)",
    )
    .option("--tags <KEY=VALUE>", "tag the source server, repeatable", collect, [])
    .option("--user-provided-id <id>", "your own id for the server")
    .option("--no-replication", "register without starting replication (StartReplication later)")
    .option("--install-dir <dir>", "where the agent package is unpacked", PACKAGE_ROOT)
    .option("--state-dir <dir>", "agent state (default: <install-dir>/state)")
    .option("--foreground", "run the agent in this process after registering, instead of as a service")
    .option("--no-systemd", "only register: install no systemd unit even where systemd runs")
    .option("--systemd-unit-dir <dir>", "where the unit file goes (default: /etc/systemd/system)")
    .option("--json", "print the result as JSON")
    .action(async (opts: Record<string, unknown>) => {
      const { installAgent, loadAgentConfig, recordService } = await import("../agent/install.ts");
      const { systemdRuns, installService, runAgent, unitDirFor, UNIT_NAME } =
        await import("../agent/service.ts");
      const region = opts.region ? String(opts.region) : undefined;
      const accessKeyId = (opts.awsAccessKeyId as string | undefined) ?? ctx.env.AWS_ACCESS_KEY_ID;
      const secretAccessKey =
        (opts.awsSecretAccessKey as string | undefined) ?? ctx.env.AWS_SECRET_ACCESS_KEY;
      const sessionToken = (opts.awsSessionToken as string | undefined) ?? ctx.env.AWS_SESSION_TOKEN;
      if (!region) throw new FerryError("USAGE", "--region is required (the control plane's region)");
      if (!accessKeyId || !secretAccessKey) {
        throw new FerryError(
          "USAGE",
          "an access key pair is required: --aws-access-key-id and --aws-secret-access-key (an install-scoped key)",
        );
      }
      if (opts.caFile && opts.caFingerprint) {
        throw new FerryError("USAGE", "give --ca-file or --ca-fingerprint, not both");
      }
      const installDir = resolvePath(String(opts.installDir));
      const stateDir = resolvePath(opts.stateDir ? String(opts.stateDir) : join(installDir, "state"));
      const json = Boolean(opts.json);
      const devices =
        typeof opts.devices === "string"
          ? opts.devices
              .split(",")
              .map((s) => s.trim())
              .filter(Boolean)
          : undefined;
      if (opts.forceVolumes && (opts.prompt !== false || !devices?.length)) {
        throw new FerryError(
          "USAGE",
          "--force-volumes needs --no-prompt and --devices (the exact disks to replicate)",
        );
      }
      const caPem = opts.caFile
        ? await readFile(String(opts.caFile), "utf8").catch((err: unknown) => {
            throw new FerryError(
              "CA_FILE_UNREADABLE",
              `cannot read --ca-file ${String(opts.caFile)}: ${String(err)}`,
            );
          })
        : undefined;
      const result = await installAgent({
        endpoint: String(opts.endpoint).replace(/\/+$/, ""),
        region,
        credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
        caPem,
        caFingerprint: opts.caFingerprint ? String(opts.caFingerprint) : undefined,
        resolve: opts.resolve as string[],
        stateDir,
        devices,
        chooseDevices: opts.prompt === false ? undefined : (disks) => promptForDisks(ctx, disks),
        tags: parseTags(opts.tags as string[]),
        userProvidedId: opts.userProvidedId ? String(opts.userProvidedId) : undefined,
        startReplication: opts.replication !== false,
        machineIdFile: ctx.env.FERRY_MACHINE_ID_FILE,
        // Where disks are discovered (/sys, /proc): tests point it at a fake root.
        sysRoot: ctx.env.FERRY_SYS_ROOT,
        forceVolumes: Boolean(opts.forceVolumes),
      });
      const foreground = Boolean(opts.foreground);
      let service: "systemd" | "systemd-offline" | "foreground" | "none" = "none";
      let unitFile: string | undefined;
      // FERRY_SYSTEM_ROOT: a tree to install the unit into (an image being prepared, a test).
      const systemRoot = resolvePath(ctx.env.FERRY_SYSTEM_ROOT ?? "/");
      if (!foreground && opts.systemd !== false && (systemdRuns(systemRoot) || systemRoot !== "/")) {
        const unitDir = opts.systemdUnitDir ? String(opts.systemdUnitDir) : unitDirFor(systemRoot);
        // Recorded before the service starts (and reads it): the agent removes this unit when it uninstalls itself.
        await recordService(stateDir, { unitFile: join(unitDir, UNIT_NAME), root: systemRoot });
        const installed = await installService(unitDir, installDir, stateDir, { root: systemRoot });
        unitFile = installed.unitFile;
        service = installed.mode === "started" ? "systemd" : "systemd-offline";
      } else if (foreground) service = "foreground";
      if (json) writeJson(ctx.stdout, { ...result, service, unitFile });
      else {
        writeLine(
          ctx.stdout,
          `Disks: ${result.disks.map((d) => `${d.deviceName} (${formatBytes(d.bytes)})`).join(", ")}`,
        );
        writeLine(ctx.stdout, `The agent is registered. Source server ID: ${result.sourceServerID}`);
        if (result.sourceServerCount !== undefined)
          writeLine(ctx.stdout, `Source servers in the service: ${result.sourceServerCount}`);
        if (service === "systemd") writeLine(ctx.stdout, `Agent service: ${UNIT_NAME} (enabled and started)`);
        else if (service === "systemd-offline")
          writeLine(
            ctx.stdout,
            `Agent service: ${unitFile} (enabled; systemd is not running under ${systemRoot}, so not started)`,
          );
        else if (service === "none")
          writeLine(
            ctx.stdout,
            `No systemd here: start the agent with ${installDir}/bin/ferry agent run --state-dir ${stateDir}`,
          );
      }
      if (foreground) {
        const log = createLogger({ stream: ctx.stderr, fields: { component: "agent" } });
        await runAgent({ config: await loadAgentConfig(stateDir), stateDir, signal: ctx.signal, log });
      }
    });

  agent
    .command("run")
    .description(
      "the installed agent: replicate to the assigned replicator and report to the control plane until disconnected (what the service runs)",
    )
    .option("--state-dir <dir>", "agent state written by `ferry agent install`", join(PACKAGE_ROOT, "state"))
    .option("--tracker <tier>", "change tracking: auto | ebpf | scan", "auto")
    .option(
      "--consistency-interval <seconds>",
      "mark a consistency point at least this often, even when the disks are idle",
      "10",
    )
    .option("--scan-interval <seconds>", "pause between passes of the scan tracker", "60")
    .action(
      async (opts: {
        stateDir: string;
        tracker: string;
        consistencyInterval: string;
        scanInterval: string;
      }) => {
        const { loadAgentConfig } = await import("../agent/install.ts");
        const { runAgent } = await import("../agent/service.ts");
        const log = createLogger({ stream: ctx.stderr, fields: { component: "agent" } });
        const config = await loadAgentConfig(resolvePath(opts.stateDir));
        log.info("agent running", { sourceServerID: config.sourceServerID, endpoint: config.endpoint });
        if (!["auto", "ebpf", "scan"].includes(opts.tracker)) {
          throw new FerryError("USAGE", `--tracker must be auto, ebpf or scan, not "${opts.tracker}"`);
        }
        const consistencyIntervalSeconds = Number(opts.consistencyInterval);
        if (!(consistencyIntervalSeconds >= 1 && consistencyIntervalSeconds <= 3600)) {
          throw new FerryError(
            "USAGE",
            `--consistency-interval must be a number of seconds from 1 to 3600, not "${opts.consistencyInterval}"`,
          );
        }
        const scanIntervalSeconds = Number(opts.scanInterval);
        if (!(scanIntervalSeconds >= 0 && scanIntervalSeconds <= 86400)) {
          throw new FerryError(
            "USAGE",
            `--scan-interval must be a number of seconds from 0 to 86400, not "${opts.scanInterval}"`,
          );
        }
        await runAgent({
          config,
          stateDir: resolvePath(opts.stateDir),
          tracker: opts.tracker as "auto",
          consistencyIntervalSeconds,
          scanIntervalSeconds,
          // systemd sets INVOCATION_ID for its services: uninstalling then disables without stopping itself.
          underSystemd: Boolean(ctx.env.INVOCATION_ID),
          signal: ctx.signal,
          log,
        });
      },
    );
}
