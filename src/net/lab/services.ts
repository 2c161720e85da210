/**
 * The lab's services, each a real process in its host's namespace: the
 * object-store endpoint (s3rver over TLS on 443, a certificate from the lab's
 * CA for the path-style and virtual-hosted names), the service API endpoint
 * (`ferry server` on 443) and the replicators (`ferry replicator run --join`,
 * registered with their private address and a public one that exists nowhere).
 */
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "../../lib/errors.ts";
import { createCa, issueCertificate } from "../../lib/pki.ts";
import { DATA_PLANE_PORT, hostOf, replicatorRoles, SERVICE_PORT } from "./plan.ts";
import type { LabEndpoints, LabKey, LabProcess, LabState } from "./state.ts";
import { alive, run, sleep, spawnInNamespace } from "./system.ts";

export const ROOT = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");
export const FERRY = join(ROOT, "bin", "ferry");
/** s3rver's own access key pair (it accepts any well-signed request made with it). */
export const S3RVER_KEY: LabKey = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
/** The control plane's clock offset, read by `ferry server` (a test seam, src/cli/server.ts). */
export const CLOCK_SKEW_ENV = "FERRY_TEST_CLOCK_SKEW_SECONDS";

export interface ProcessHost {
  state: LabState;
  save(): Promise<void>;
}

/** Starts a recorded process in a host's namespace, logging to <lab dir>/logs/<name>.{out,log}. */
export async function startProcess(
  lab: ProcessHost,
  ns: string,
  name: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<LabProcess> {
  const logs = join(lab.state.dir, "logs");
  await mkdir(logs, { recursive: true });
  const stdoutFile = join(logs, `${name}.out`);
  const stderrFile = join(logs, `${name}.log`);
  await writeFile(stdoutFile, "");
  const pid = spawnInNamespace(ns, cmd, args, { stdoutFile, stderrFile, env });
  const p: LabProcess = { name, pid, ns, stdoutFile, stderrFile };
  lab.state.processes = lab.state.processes.filter((x) => x.name !== name);
  lab.state.processes.push(p);
  await lab.save();
  return p;
}

/** Waits (bounded) for a line of the process's stdout matching `pred`; fails early when it exits. */
export async function waitForLine(
  p: LabProcess,
  pred: (line: string) => boolean,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(p.stdoutFile, "utf8").catch(() => "");
    const line = text.split("\n").find((l) => l.trim() !== "" && pred(l));
    if (line !== undefined) return line;
    if (!alive(p.pid) || Date.now() > deadline) {
      const err = await readFile(p.stderrFile, "utf8").catch(() => "");
      throw new FerryError(
        "LAB_SERVICE_NOT_READY",
        `${p.name} (pid ${p.pid}) ${alive(p.pid) ? `not ready within ${timeoutMs} ms` : "exited"}; its log (${p.stderrFile}) ends:\n${err.slice(-2000)}`,
        { kind: "internal" },
      );
    }
    await sleep(100);
  }
}

function jsonLine(line: string): Record<string, unknown> {
  return JSON.parse(line) as Record<string, unknown>;
}

export async function startObjectStore(lab: ProcessHost): Promise<LabEndpoints["objectStore"]> {
  const { plan, dir } = lab.state;
  const names = plan.names;
  const host = hostOf(plan, "objectStore");
  const certs = join(dir, "certs");
  await mkdir(certs, { recursive: true });
  const ca = await createCa(`Ferry lab ${plan.id} CA`);
  const leaf = await issueCertificate(ca, {
    commonName: names.objectStore,
    altNames: [names.objectStore, `*.${names.objectStore}`, host.address],
  });
  const caFile = join(certs, "lab-ca.pem");
  await writeFile(caFile, ca.certPem);
  await writeFile(join(certs, "object-store.pem"), leaf.certPem);
  await writeFile(join(certs, "object-store.key"), leaf.keyPem, { mode: 0o600 });
  const dataDir = join(dir, "object-store");
  await mkdir(dataDir, { recursive: true });
  const bin = join(
    dirname(createRequire(import.meta.url).resolve("s3rver/package.json")),
    "bin",
    "s3rver.js",
  );
  const p = await startProcess(lab, host.ns, "object-store", process.execPath, [
    bin,
    "--directory",
    dataDir,
    "--address",
    host.address,
    "--port",
    String(SERVICE_PORT),
    "--key",
    join(certs, "object-store.key"),
    "--cert",
    join(certs, "object-store.pem"),
    "--service-endpoint",
    names.objectStoreServiceEndpoint,
    "--silent",
    "--configure-bucket",
    names.bucket,
  ]);
  await waitForLine(p, (l) => l.includes("S3rver listening"), 30_000);
  return {
    endpoint: names.objectStore,
    caFile,
    bucket: names.bucket,
    installerUrl: `https://${names.bucketHost}/latest/linux/ferry-installer-init`,
    credentials: S3RVER_KEY,
    dataDir,
  };
}

/** How long a silent agent takes to show AGENT_NOT_SEEN, unless the lab is told otherwise (`ferry server`'s default). */
export const AGENT_NOT_SEEN_AFTER_SECONDS = 60;

/**
 * `ferry server` on the service endpoint, 443; `skewSeconds` shifts its clock
 * (the skew knob); `agentNotSeenAfterSeconds` is its --agent-not-seen-after.
 */
export async function startControlPlane(
  lab: ProcessHost,
  skewSeconds = 0,
  agentNotSeenAfterSeconds = AGENT_NOT_SEEN_AFTER_SECONDS,
): Promise<LabEndpoints["controlPlane"]> {
  const { plan, dir } = lab.state;
  const host = hostOf(plan, "service");
  const dataDir = join(dir, "control-plane");
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (skewSeconds) env[CLOCK_SKEW_ENV] = String(skewSeconds);
  else delete env[CLOCK_SKEW_ENV];
  const p = await startProcess(
    lab,
    host.ns,
    "control-plane",
    FERRY,
    [
      "server",
      "--listen",
      `${host.address}:${SERVICE_PORT}`,
      "--cert-name",
      plan.names.service,
      host.address,
      "--data-dir",
      dataDir,
      "--region",
      plan.names.region,
      "--agent-not-seen-after",
      String(agentNotSeenAfterSeconds),
      "--json",
    ],
    env,
  );
  const info = jsonLine(await waitForLine(p, (l) => l.startsWith("{"), 30_000));
  return {
    endpoint: `https://${plan.names.service}`,
    caFile: String(info.caFile),
    caFingerprint: String(info.caFingerprint),
    dataDir,
    agentNotSeenAfterSeconds,
  };
}

/** An access key made directly in the control plane's store (as an operator does on that host). */
export async function createAccessKey(
  dataDir: string,
  region: string,
  scope: "operator" | "install" | "replicator",
): Promise<LabKey> {
  const out = await run(FERRY, [
    "access-key",
    "create",
    "--scope",
    scope,
    "--description",
    "ferry lab",
    "--data-dir",
    dataDir,
    "--region",
    region,
    "--json",
  ]);
  const key = JSON.parse(out) as LabKey;
  return { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey };
}

export async function startReplicators(
  lab: ProcessHost,
  control: LabEndpoints["controlPlane"],
  key: LabKey,
): Promise<LabEndpoints["replicators"]> {
  const { plan, dir } = lab.state;
  const started = await Promise.all(
    replicatorRoles(plan).map(async (role) => {
      const host = hostOf(plan, role);
      const dataDir = join(dir, role);
      const name = `lab-${plan.id}-${role}`;
      const privateAddress = `${host.address}:${DATA_PLANE_PORT}`;
      const publicAddress = `${plan.publicAddress[role]}:${DATA_PLANE_PORT}`;
      const p = await startProcess(
        lab,
        host.ns,
        role,
        FERRY,
        [
          "replicator",
          "run",
          "--join",
          control.endpoint,
          "--region",
          plan.names.region,
          "--ca-file",
          control.caFile,
          "--listen",
          privateAddress,
          "--public-address",
          publicAddress,
          "--name",
          name,
          "--pool",
          plan.stagingSubnetId,
          "--data-dir",
          dataDir,
          "--json",
        ],
        { ...process.env, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey },
      );
      const info = jsonLine(await waitForLine(p, (l) => l.startsWith("{"), 30_000));
      return {
        role,
        name,
        privateAddress,
        publicAddress,
        dataDir,
        ...(typeof info.replicatorId === "string" ? { replicatorId: info.replicatorId } : {}),
      };
    }),
  );
  if (started.length === 0) throw new FerryError("LAB_NO_REPLICATOR", "the lab has no replicator");
  return started;
}
