/**
 * The agent's systemd unit: written and enabled at install (started where
 * systemd runs, enabled offline in a tree it does not run in), removed at
 * uninstall. `root` is `/` on a real machine and a directory tree in tests
 * (`FERRY_SYSTEM_ROOT`).
 */
import { readFile, writeFile, mkdir, rm, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { FerryError, systemErrorCode } from "../lib/errors.ts";

export const UNIT_NAME = "ferry-agent.service";

const run = promisify(execFile);

/** systemd is the init system (the check `sd_booted()` makes) under `root` (`FERRY_SYSTEM_ROOT` in tests). */
export function systemdRuns(root = "/"): boolean {
  return existsSync(join(root, "run/systemd/system"));
}

/** Where the unit goes under `root`: `<root>/etc/systemd/system`. */
export function unitDirFor(root = "/"): string {
  return join(root, "etc/systemd/system");
}

/** The unit file: the bundled CLI, restarted on failure, state under the install dir. */
export function renderUnit(installDir: string, stateDir: string): string {
  return [
    "[Unit]",
    "Description=Ferry replication agent",
    "Documentation=https://github.com/ferry/ferry/blob/main/docs/installer.md",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${installDir}/bin/ferry agent run --state-dir ${stateDir}`,
    `Environment=NODE_COMPILE_CACHE=${installDir}/cache`,
    "Restart=on-failure",
    "RestartSec=5",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Writes the unit into `unitDir`; returns its path. Enabling it is the caller's (systemctl). */
export async function writeUnit(unitDir: string, installDir: string, stateDir: string): Promise<string> {
  await mkdir(unitDir, { recursive: true });
  const path = join(unitDir, UNIT_NAME);
  await writeFile(path, renderUnit(installDir, stateDir), { mode: 0o644 });
  return path;
}

async function systemctl(args: string[], hint: string): Promise<void> {
  try {
    await run("systemctl", args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new FerryError(
      "SYSTEMD_FAILED",
      `systemctl ${args.join(" ")} failed (${stderr || String(err)}): ${hint}`,
      {
        cause: err,
      },
    );
  }
}

/** `multi-user.target.wants/ferry-agent.service` beside the unit: what `systemctl enable` makes. */
function wantsLink(unitFile: string): string {
  return join(dirname(unitFile), "multi-user.target.wants", UNIT_NAME);
}

/** What the service install did. */
export interface InstalledService {
  unitFile: string;
  /** The root the unit was installed under (`/`, or a tree with `FERRY_SYSTEM_ROOT`). */
  root: string;
  /** `started`: enabled and started by the running systemd; `offline`: enabled in a tree no systemd runs. */
  mode: "started" | "offline";
}

/**
 * Writes the unit. Where systemd runs: `systemctl daemon-reload` and
 * `enable --now`. Under another root no systemd runs in (an image being
 * prepared, a test's tree): enabled the way `systemctl --root enable` does,
 * with the `multi-user.target.wants` link, so it starts at that system's boot.
 */
export async function installService(
  unitDir: string,
  installDir: string,
  stateDir: string,
  o: { root?: string } = {},
): Promise<InstalledService> {
  const root = o.root ?? "/";
  const unitFile = await writeUnit(unitDir, installDir, stateDir);
  if (!systemdRuns(root)) {
    const link = wantsLink(unitFile);
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { force: true });
    const inRoot = relative(root, unitFile);
    await symlink(inRoot.startsWith("..") ? unitFile : `/${inRoot}`, link);
    return { unitFile, root, mode: "offline" };
  }
  const hint = `the server is registered; see \`journalctl -u ${UNIT_NAME}\`, or start the agent with ${installDir}/bin/ferry agent run --state-dir ${stateDir}`;
  await systemctl(["daemon-reload"], hint);
  await systemctl(["enable", "--now", UNIT_NAME], hint);
  return { unitFile, root, mode: "started" };
}

export interface RemoveServiceOptions {
  unitFile: string;
  /** Only a unit that runs this state directory is removed. */
  stateDir: string;
  /** @default "/" */
  root?: string;
  /** Stop the service too (`disable --now`); false when the caller is the service itself, which exits by itself. */
  stop: boolean;
}

/**
 * Removes the agent's unit: where systemd runs, `systemctl disable` (with
 * `--now` when asked), the file, `daemon-reload`; where it does not, the file
 * and its `wants` link. Returns what it did, one line each, for the log and
 * the operator. A unit that runs another install is left alone (and said so).
 */
export async function removeService(o: RemoveServiceOptions): Promise<string[]> {
  const root = o.root ?? "/";
  let unit: string;
  try {
    unit = await readFile(o.unitFile, "utf8");
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return [`no unit file at ${o.unitFile}`];
    throw err;
  }
  if (!unit.split("\n").some((l) => l.startsWith("ExecStart=") && l.endsWith(` --state-dir ${o.stateDir}`))) {
    return [`left ${o.unitFile}: it runs another agent install, not --state-dir ${o.stateDir}`];
  }
  if (!systemdRuns(root)) {
    await rm(wantsLink(o.unitFile), { force: true });
    await rm(o.unitFile, { force: true });
    return [
      `systemd is not running: removed the unit file ${o.unitFile} (nothing to stop, disable or reload)`,
    ];
  }
  const done: string[] = [];
  const hint = `remove ${o.unitFile} by hand and run systemctl daemon-reload`;
  await systemctl(o.stop ? ["disable", "--now", UNIT_NAME] : ["disable", UNIT_NAME], hint);
  done.push(
    o.stop
      ? `stopped and disabled ${UNIT_NAME}`
      : `disabled ${UNIT_NAME} (this process is the service and exits now)`,
  );
  await rm(o.unitFile, { force: true });
  done.push(`removed the unit file ${o.unitFile}`);
  await systemctl(["daemon-reload"], hint);
  done.push("systemctl daemon-reload");
  return done;
}
