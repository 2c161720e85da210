/**
 * Post-launch actions: scripts run against the launched disks before the
 * instance starts — MGN's `postLaunchActions.ssmDocuments`, where Ferry reads
 * `ssmDocumentName` as the name of an executable in the launcher's scripts
 * directory. The boot disk is attached to a loop device and its root
 * filesystem mounted read-write (these are the launch's own copies, never the
 * snapshot); every loop device and mount is released, whatever happens.
 * A script gets the mount point as $1 and in FERRY_ROOT.
 */
import { execFile, spawn } from "node:child_process";
import { access, mkdir, rm } from "node:fs/promises";
import { constants } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { SsmDocument } from "../model/mgn-shapes.gen.ts";
import type { PostLaunchActionResult } from "../model/launch.ts";

const run = promisify(execFile);
const OUTPUT_LIMIT = 16 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{2,171}$/;

export interface ActionRun extends PostLaunchActionResult {
  exitCode: number | null;
  output: string;
  mustSucceedForCutover: boolean;
}

/** The actions of a launch configuration that apply to this kind of launch. */
export function actionsFor(
  postLaunchActions: { deployment?: string; ssmDocuments?: SsmDocument[] } | undefined,
  kind: "START_TEST" | "START_CUTOVER",
): SsmDocument[] {
  const deployment = postLaunchActions?.deployment ?? "TEST_AND_CUTOVER";
  if (deployment === "CUTOVER_ONLY" && kind === "START_TEST") return [];
  if (deployment === "TEST_ONLY" && kind === "START_CUTOVER") return [];
  return postLaunchActions?.ssmDocuments ?? [];
}

async function runScript(
  path: string,
  root: string,
  timeoutSeconds: number,
): Promise<{ exitCode: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(path, [root], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", FERRY_ROOT: root },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const take = (c: Buffer) => {
      if (output.length < OUTPUT_LIMIT) output += c.toString("utf8");
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ exitCode: null, output: err.message, timedOut });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, output: output.slice(0, OUTPUT_LIMIT), timedOut });
    });
  });
}

/** Mounts the root filesystem of a raw disk image read-write; returns the undo. */
async function mountDisk(image: string, where: string): Promise<{ root: string; release(): Promise<void> }> {
  const dev = (await run("losetup", ["--find", "--show", "--partscan", image])).stdout.trim();
  const undo: (() => Promise<unknown>)[] = [() => run("losetup", ["-d", dev])];
  const release = async () => {
    for (const fn of undo.reverse()) await fn().catch(() => {});
  };
  try {
    await mkdir(where, { recursive: true });
    undo.push(() => rm(where, { recursive: true, force: true }));
    // A partitioned disk: its first partition that mounts; else the whole device.
    const { stdout } = await run("lsblk", ["-lnpo", "NAME,TYPE", dev]);
    const parts = stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === "part")
      .map((f) => f[0]!);
    let mounted = false;
    for (const candidate of [...parts, dev]) {
      try {
        await run("mount", [candidate, where]);
        mounted = true;
        break;
      } catch {
        // not a filesystem we can mount; try the next
      }
    }
    if (!mounted) throw new Error(`no mountable filesystem on ${image}`);
    undo.push(async () => {
      try {
        await run("umount", [where]);
      } catch {
        await run("umount", ["-l", where]);
      }
    });
    return { root: where, release };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Runs `actions` against the boot disk image. Never throws for a script's
 * failure (it is in the result); throws when the disk cannot be mounted.
 */
export async function runPostLaunchActions(
  actions: SsmDocument[],
  bootDisk: string,
  scriptsDir: string,
  workDir: string,
): Promise<ActionRun[]> {
  if (!actions.length) return [];
  const results: ActionRun[] = [];
  const mounted = await mountDisk(bootDisk, join(workDir, ".post-launch-root"));
  try {
    for (const a of actions) {
      const base = {
        actionName: a.actionName,
        ssmDocumentName: a.ssmDocumentName,
        mustSucceedForCutover: a.mustSucceedForCutover ?? true,
      };
      const script = join(scriptsDir, a.ssmDocumentName);
      if (!NAME.test(a.ssmDocumentName)) {
        results.push({
          ...base,
          executionStatus: "FAILED",
          failureReason: `'${a.ssmDocumentName}' is not a script name (letters, digits, '.', '_', '-'; no '/')`,
          exitCode: null,
          output: "",
        });
        continue;
      }
      try {
        await access(script, constants.X_OK);
      } catch {
        results.push({
          ...base,
          executionStatus: "FAILED",
          failureReason: `no executable script ${script}; put it in the post-launch scripts directory`,
          exitCode: null,
          output: "",
        });
        continue;
      }
      const r = await runScript(script, mounted.root, a.timeoutSeconds ?? 300);
      const ok = r.exitCode === 0 && !r.timedOut;
      results.push({
        ...base,
        executionStatus: ok ? "SUCCESS" : "FAILED",
        ...(ok
          ? {}
          : {
              failureReason: r.timedOut
                ? `timed out after ${a.timeoutSeconds ?? 300} s`
                : `exit status ${r.exitCode ?? "none"}`,
            }),
        exitCode: r.exitCode,
        output: r.output,
      });
    }
  } finally {
    await mounted.release();
  }
  return results;
}
