/**
 * The `qemu` target: boots the launched disks with qemu-system-x86_64 (KVM
 * when the host can run an ordinary guest under it, software emulation
 * otherwise: `chooseAccelerator`). When the boot disk's
 * root filesystem holds /boot/vmlinuz (and /boot/initrd.img), they are taken
 * out with debugfs and booted directly with a serial console; otherwise the
 * disk boots through the firmware like any PC. First boot is SUCCEEDED when
 * the boot marker shows on the serial console, UNKNOWN when it has not by the
 * timeout or qemu exits first.
 */
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { constants } from "node:fs";
import { access, readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LaunchTarget, TargetLaunch, TargetLaunchContext } from "./target.ts";
import type { Accelerator, AcceleratorChoice } from "../../model/launch.ts";
import { FerryError } from "../../lib/errors.ts";

const run = promisify(execFile);
const QEMU = "qemu-system-x86_64";

/** Copies `path` out of the ext2/3/4 filesystem in `image` (following one symlink); false when absent. */
async function extract(image: string, path: string, out: string): Promise<boolean> {
  for (let hop = 0, p = path; hop < 3; hop++) {
    const { stdout } = await run("debugfs", ["-R", `stat ${p}`, image]).catch(() => ({ stdout: "" }));
    if (!stdout.includes("Inode:")) return false;
    const link = /Fast link dest: "([^"]+)"/.exec(stdout);
    if (link) {
      p = link[1]!.startsWith("/") ? link[1]! : `${p.slice(0, p.lastIndexOf("/") + 1)}${link[1]!}`;
      continue;
    }
    await run("debugfs", ["-R", `dump ${p} ${out}`, image]);
    return (await stat(out).catch(() => undefined))?.isFile() ?? false;
  }
  return false;
}

/** What decides whether KVM can run an ordinary guest here (`readHostVirtualization`). */
export interface HostVirtualization {
  /** /dev/kvm exists and this process may open it read-write. */
  kvmDevice: boolean;
  /** The CPU's flags from /proc/cpuinfo (`vmx`: Intel VT-x, `svm`: AMD-V). */
  cpuFlags: ReadonlySet<string>;
  /** Loaded KVM modules (/sys/module/kvm_*): `kvm_intel`, `kvm_amd`, `kvm_pvm`, … */
  kvmModules: readonly string[];
}

export async function readHostVirtualization(): Promise<HostVirtualization> {
  const kvmDevice = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "";
  const kvmModules = (await readdir("/sys/module").catch(() => [] as string[])).filter((m) =>
    m.startsWith("kvm_"),
  );
  return { kvmDevice, cpuFlags: new Set(flags.split(/\s+/).filter(Boolean)), kvmModules };
}

/**
 * KVM or software emulation (tcg), and why. A /dev/kvm is not enough: under
 * PVM (kvm_pvm, KVM inside a VM without hardware virtualization) it runs only
 * kernels built as PVM guests, and an ordinary one hangs without printing a
 * byte. `auto` takes KVM only when the CPU shows VT-x or AMD-V; `kvm` asked for
 * where it cannot work is an error that says why.
 */
export function chooseAccelerator(wanted: Accelerator, host: HostVirtualization): AcceleratorChoice {
  if (wanted === "tcg") return { name: "tcg", reason: "software emulation, as the launch settings ask" };
  const hardware = host.cpuFlags.has("vmx") ? "VT-x" : host.cpuFlags.has("svm") ? "AMD-V" : undefined;
  const pvm = host.kvmModules.includes("kvm_pvm");
  const missing = !host.kvmDevice
    ? "/dev/kvm is missing or not readable and writable by the control plane"
    : !hardware
      ? `the CPU has no VT-x or AMD-V (no vmx or svm flag in /proc/cpuinfo)${pvm ? " and its KVM is PVM (kvm_pvm), which boots only PVM guest kernels" : ""}`
      : undefined;
  if (!missing) return { name: "kvm", reason: `KVM (${hardware}, /dev/kvm)` };
  if (wanted === "kvm")
    throw new FerryError(
      "QEMU_KVM_UNAVAILABLE",
      `The launch settings ask for KVM, but ${missing}. Set the accelerator to auto or tcg (software emulation), or launch on a host with hardware virtualization.`,
    );
  return { name: "tcg", reason: `software emulation: ${missing}` };
}

async function hasQemu(): Promise<boolean> {
  return run(QEMU, ["--version"]).then(
    () => true,
    () => false,
  );
}

function watchConsole(
  child: ChildProcess,
  consoleLog: string,
  marker: string,
  timeoutMs: number,
): Promise<"SUCCEEDED" | "UNKNOWN"> {
  return new Promise((resolve) => {
    let exited = false;
    child.once("exit", () => (exited = true));
    const deadline = Date.now() + timeoutMs;
    const poll = async () => {
      const text = await readFile(consoleLog, "utf8").catch(() => "");
      if (text.includes(marker)) return resolve("SUCCEEDED");
      if (exited || Date.now() > deadline) return resolve("UNKNOWN");
      setTimeout(() => void poll(), 250);
    };
    void poll();
  });
}

export function createQemuTarget(): LaunchTarget {
  const running = new Map<string, ChildProcess>();

  async function stop(instanceId: string, dir?: string): Promise<void> {
    const child = running.get(instanceId);
    running.delete(instanceId);
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
      return;
    }
    // A qemu left by an earlier control plane process: its pid file says which.
    if (dir) {
      const pid = Number((await readFile(join(dir, "qemu.pid"), "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 1) {
        const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
        if (cmd.includes(dir)) process.kill(pid, "SIGKILL");
      }
    }
  }

  return {
    name: "qemu",
    async launch(ctx: TargetLaunchContext): Promise<TargetLaunch> {
      const disks = ctx.disks.map((d) => ({
        diskId: d.diskId,
        path: d.path,
        format: "raw" as const,
        bytes: d.bytes,
      }));
      if (ctx.disposition === "STOPPED") return { disks, firstBoot: "STOPPED" };
      if (!(await hasQemu()))
        throw new FerryError(
          "QEMU_MISSING",
          `The qemu target needs ${QEMU} on the control plane host; install qemu-system-x86 or use the image target.`,
        );
      const boot = ctx.disks[0];
      if (!boot) throw new FerryError("NO_DISKS", "The snapshot has no disks to boot.");
      const kernel = join(ctx.dir, "vmlinuz");
      const initrd = join(ctx.dir, "initrd.img");
      const direct = await extract(boot.path, "/boot/vmlinuz", kernel);
      const haveInitrd = direct && (await extract(boot.path, "/boot/initrd.img", initrd));
      const consoleLog = join(ctx.dir, "console.log");
      const accelerator = chooseAccelerator(
        ctx.settings.accelerator ?? "auto",
        await readHostVirtualization(),
      );
      const args = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-accel",
        accelerator.name,
        "-m",
        String(ctx.settings.memoryMiB ?? 256),
        "-smp",
        "1",
        "-nic",
        "none",
        "-no-reboot",
        "-serial",
        `file:${consoleLog}`,
        "-pidfile",
        join(ctx.dir, "qemu.pid"),
      ];
      ctx.disks.forEach((d) => args.push("-drive", `file=${d.path},format=raw,if=virtio,cache=unsafe`));
      if (direct) {
        args.push("-kernel", kernel, "-append", "console=ttyS0 root=/dev/vda rw panic=-1");
        if (haveInitrd) args.push("-initrd", initrd);
      }
      const child = spawn(QEMU, args, { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr?.on("data", (c: Buffer) => {
        if (stderr.length < 4096) stderr += c.toString("utf8");
      });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", reject);
      });
      running.set(ctx.instanceId, child);
      ctx.logger.info("qemu instance started", {
        instanceId: ctx.instanceId,
        pid: child.pid,
        accelerator: accelerator.name,
        reason: accelerator.reason,
      });
      child.once("exit", (code, signal) => {
        if (running.get(ctx.instanceId) === child) running.delete(ctx.instanceId);
        ctx.logger.info("qemu instance exited", {
          instanceId: ctx.instanceId,
          code,
          signal,
          stderr: stderr.trim(),
        });
      });
      const timeoutMs = (ctx.settings.bootTimeoutSeconds ?? 120) * 1000;
      const firstBootResult = watchConsole(child, consoleLog, ctx.settings.bootMarker ?? "login:", timeoutMs);
      return {
        disks,
        firstBoot: "WAITING",
        firstBootResult,
        ...(child.pid !== undefined ? { pid: child.pid } : {}),
        consoleLog,
        accelerator,
      };
    },
    terminate: stop,
    async close() {
      await Promise.all([...running.keys()].map((id) => stop(id)));
    },
  };
}
