/**
 * `ferry demo`'s install step, the way a source server meets it: the agent
 * package is built (without the Node runtime, to stay quick) and published to
 * the control plane with `ferry release publish --endpoint`; the installer
 * script is downloaded from the control plane, run by `sh`, and downloads the
 * package (signed with an install key), checks its SHA-256, unpacks it and
 * hands over to the unpacked `bin/ferry agent install`, which registers. Only
 * the demo's sample disk is offered: an empty /sys keeps this machine's disks
 * out, and no systemd unit is written.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "../lib/errors.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

export interface DemoInstallOptions {
  work: string;
  endpoint: string;
  region: string;
  caFile: string;
  /** An operator key: publishes the package. */
  operator: { accessKeyId: string; secretAccessKey: string };
  /** Makes the install-scoped key the installer uses. */
  createInstallKey(): Promise<{ accessKeyId: string; secretAccessKey: string }>;
  disk: string;
  say(line: string): void;
}

export interface DemoInstallResult {
  sourceServerID: string;
  /** The agent's state directory, for `ferry agent run`. */
  stateDir: string;
}

/** GET `url` trusting `caPem` (the installer script is served without a signature). */
function download(url: string, caPem: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: caPem, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(
              new Error(`${url}: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`),
            ),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

export async function demoInstall(o: DemoInstallOptions): Promise<DemoInstallResult> {
  const { buildAgentPackage, PACKAGE_NAME } = await import("../release/build.ts");
  const { publishToControlPlane } = await import("../release/publish-control.ts");
  const caPem = await readFile(o.caFile, "utf8");

  o.say(
    "3a. ferry release publish --endpoint: the agent package (here without its Node runtime) to the control plane",
  );
  const dist = join(o.work, "dist");
  const built = await buildAgentPackage({ root: ROOT, outDir: dist, withRuntime: false });
  await publishToControlPlane({
    endpoint: o.endpoint,
    region: o.region,
    credentials: o.operator,
    caPem,
    packageFile: join(dist, PACKAGE_NAME),
    sha256File: join(dist, `${PACKAGE_NAME}.sha256`),
    installerFile: join(ROOT, "installer", "ferry-installer-init"),
    version: built.version,
    timeoutMs: 60_000,
  });
  o.say(`   ${o.endpoint}/ferry/agent/package  sha256 ${built.sha256.slice(0, 16)}…`);

  o.say(
    "3b. on the source: fetch ferry-installer-init from the control plane and run it with an install key",
  );
  const installer = join(o.work, "ferry-installer-init");
  await writeFile(installer, await download(`${o.endpoint}/ferry/agent/ferry-installer-init`, caPem));
  const installKey = await o.createInstallKey();
  const fakeRoot = join(o.work, "demo-root");
  await mkdir(join(fakeRoot, "sys", "block"), { recursive: true });
  await mkdir(join(fakeRoot, "proc", "self"), { recursive: true });
  await writeFile(join(fakeRoot, "proc", "self", "mountinfo"), "");
  const machineIdFile = join(o.work, "machine-id");
  await writeFile(machineIdFile, `${Buffer.from(o.work).toString("hex").padEnd(32, "0").slice(0, 32)}\n`);
  const installDir = join(o.work, "agent-install");
  const args = [
    installer,
    "--region",
    o.region,
    "--endpoint",
    o.endpoint,
    "--ca-file",
    o.caFile,
    "--aws-access-key-id",
    installKey.accessKeyId,
    "--no-prompt",
    "--devices",
    o.disk,
    "--tags",
    "app=ferry-demo",
    "--install-dir",
    installDir,
    "--no-systemd",
  ];
  // The demo's keys only: none of the caller's AWS credentials reach the installer.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
  const child = spawn("sh", args, {
    env: {
      ...env,
      // The package has no runtime of its own here: its bin/ferry runs on this node.
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      AWS_SECRET_ACCESS_KEY: installKey.secretAccessKey,
      FERRY_SYS_ROOT: fakeRoot,
      FERRY_MACHINE_ID_FILE: machineIdFile,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const code = await new Promise<number | null>((resolve) => {
    child.on("error", () => resolve(null));
    child.on("close", resolve);
  });
  clearTimeout(timer);
  const id = /Source server ID: (s-[0-9a-zA-Z]{17})/.exec(stdout)?.[1];
  if (code !== 0 || !id) {
    throw new FerryError(
      "DEMO_INSTALL_FAILED",
      `ferry-installer-init exited ${code}: ${(stderr + stdout).trim().split("\n").slice(-5).join(" | ")}`,
    );
  }
  for (const line of stderr.split("\n"))
    if (/^(Downloading|Package verified|Agent unpacked)/.test(line)) o.say(`   ${line}`);
  o.say(
    `   source server ${id}${/Source servers in the service: \d+/.exec(stdout)?.[0].replace(/^/, " — ") ?? ""}`,
  );
  return { sourceServerID: id, stateDir: join(installDir, "state") };
}

/**
 * `ferry source-server list` as an operator runs it, in its own process (a
 * second SQLite connection in this process would wait on the running
 * control plane's), its table indented under the demo's step.
 */
export async function showSourceServerList(dataDir: string, say: (line: string) => void): Promise<void> {
  const cli = join(ROOT, "src", "cli", "main.ts");
  say(`   ferry source-server list --data-dir ${dataDir}`);
  const text = await new Promise<string>((resolve) => {
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", cli, "source-server", "list", "--data-dir", dataDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", (err) => resolve(String(err)));
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
  for (const line of text.trimEnd().split("\n")) say(`   ${line}`);
}
