/**
 * The lab's own lifecycle, without the services (`--network-only`): a test
 * run killed with SIGKILL leaves a lab behind, which `ferry lab down` finds
 * by its state file and removes — namespaces, hosts files, processes, loop
 * device, directory — and a second `ferry lab down` is harmless; `ferry lab`
 * refuses to run without root, with a message that says so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.ts";
import type { LabState } from "../../src/net/lab/state.ts";
import { alive } from "../../src/net/lab/system.ts";
import { labUnavailable } from "../support/lab.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const LAB = join(ROOT, "src", "net", "lab", "index.ts");

/** A registry of this test's own: `ferry lab down` here never sees the labs of anyone else. */
let env: NodeJS.ProcessEnv = process.env;

async function ferry(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = "";
  let e = "";
  out.on("data", (c: Buffer) => (o += c.toString()));
  err.on("data", (c: Buffer) => (e += c.toString()));
  const code = await main(argv, {
    stdout: out,
    stderr: err,
    isTTY: false,
    env,
    signal: new AbortController().signal,
  });
  return { code, out: o, err: e };
}

test(
  "a lab left by a killed test run is found and removed by ferry lab down; a second down is harmless",
  { skip: labUnavailable(), timeout: 120_000 },
  async () => {
    // A test run that builds a lab, starts a process in it, attaches a loop device, and is killed.
    const script = `
      const { startLab } = await import(${JSON.stringify(LAB)});
      const lab = await startLab({ ownerPid: process.pid, services: false });
      const sleeper = await lab.spawn("source", "sleeper", "sleep", ["600"]);
      const disk = await lab.addSourceDisk(1024 * 1024);
      process.stdout.write(JSON.stringify({ id: lab.id, pid: sleeper.pid, device: disk.device }) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const registry = await mkdtemp(join(tmpdir(), "ferry-lab-registry-"));
    env = { ...process.env, FERRY_LAB_STATE_DIR: registry };
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env,
      },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const started = await new Promise<{ id: string; pid: number; device: string }>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error(`the lab did not come up:\n${stderr}`)), 60_000);
      child.stdout.on("data", (c: Buffer) => {
        buf += c.toString();
        if (buf.includes("\n")) {
          clearTimeout(timer);
          resolve(JSON.parse(buf.split("\n")[0]!) as { id: string; pid: number; device: string });
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the lab's process exited (${code}):\n${stderr}`));
      });
    });
    const { id, pid, device } = started;
    let cleaned = false;
    try {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));

      const status = await ferry(["lab", "status", id, "--json"]);
      assert.equal(status.code, 0, status.err);
      const [lab] = (
        JSON.parse(status.out) as { labs: { state: LabState; processes: { running: boolean }[] }[] }
      ).labs;
      assert.ok(lab, `ferry lab status does not show lab ${id}`);
      assert.deepEqual(
        lab.processes.map((p) => p.running),
        [true],
      );
      const namespaces = lab.state.namespaces;
      assert.equal(namespaces.length, lab.state.plan.hosts.length);
      const listed = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      for (const ns of namespaces) assert.ok(listed.includes(ns), `${ns} was not created`);
      assert.ok(alive(pid));

      const down = await ferry(["lab", "down", "--json"]);
      assert.equal(down.code, 0, down.err);
      const report = (
        JSON.parse(down.out) as {
          labs: { id: string; killed: number[]; loops: string[]; errors: string[] }[];
        }
      ).labs.find((l) => l.id === id);
      assert.ok(report, `ferry lab down did not take lab ${id}: ${down.out}`);
      cleaned = true;
      assert.deepEqual(report.errors, []);
      assert.ok(report.killed.includes(pid));
      assert.deepEqual(report.loops, [device]);
      for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(!alive(pid), "the lab's process survived");
      const after = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      for (const ns of namespaces) {
        assert.ok(!after.includes(ns), `${ns} left behind`);
        assert.ok(!existsSync(join("/etc/netns", ns)), `/etc/netns/${ns} left behind`);
      }
      assert.ok(!existsSync(lab.state.dir), `${lab.state.dir} left behind`);
      const loops = execFileSync("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"], {
        encoding: "utf8",
      });
      assert.ok(!loops.includes(lab.state.dir), loops);

      const again = await ferry(["lab", "down", id, "--json"]);
      assert.equal(again.code, 0, again.err);
      assert.deepEqual((JSON.parse(again.out) as { labs: unknown[] }).labs, []);
      const status2 = await ferry(["lab", "status", id]);
      assert.match(status2.out, new RegExp(`no lab ${id}`));
    } finally {
      if (!cleaned) await ferry(["lab", "down", id]);
      await rm(registry, { recursive: true, force: true });
    }
  },
);

test(
  "ferry lab up refuses to run without root and says why",
  {
    skip:
      (process.getuid?.() !== 0 && "needs root to drop to another user") ||
      (!existsSync("/usr/bin/setpriv") && "setpriv (util-linux) not installed"),
  },
  () => {
    let failed: { status: number | null; stderr: string } | undefined;
    try {
      execFileSync(
        "setpriv",
        [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          join(ROOT, "bin", "ferry"),
          "lab",
          "up",
          "--network-only",
        ],
        {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 30_000,
          env: { ...process.env, HOME: "/tmp", NODE_COMPILE_CACHE: "" },
        },
      );
    } catch (err) {
      failed = err as { status: number | null; stderr: string };
    }
    assert.ok(failed, "ferry lab up ran as an ordinary user");
    assert.equal(failed.status, 1, failed.stderr);
    assert.match(failed.stderr, /run it as root/);
    assert.doesNotMatch(failed.stderr, /\n\s+at /, "a stack trace for a user mistake");
  },
);
