/**
 * `ferry doctor --source | --replicator | --server`: checks every network
 * flow the side it runs on needs (docs/private-network.md), with the
 * configuration that side uses, and names what blocks each. Exit 1 when a
 * flow fails.
 */
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "../lib/errors.ts";
import type { DoctorFinding } from "../net/doctor/checks.ts";
import { type CliContext, writeJson } from "./context.ts";
import { defaultHome } from "./paths.ts";

const PACKAGE_ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

interface DoctorFlags {
  source?: boolean;
  replicator?: boolean;
  server?: boolean;
  stateDir?: string;
  endpoint?: string;
  join?: string;
  region?: string;
  awsAccessKeyId?: string;
  awsSecretAccessKey?: string;
  caFile?: string;
  caFingerprint?: string;
  resolve: string[];
  s3Endpoint?: string;
  bucket?: string;
  pathStyle?: boolean;
  s3CaFile?: string;
  listen?: string;
  sourceAddress: string[];
  dataDir?: string;
  databaseUrl?: string;
  agentNotSeenAfter?: string;
  replicatorNotSeenAfter?: string;
  timeoutMs: string;
  probeBytes: string;
  json?: boolean;
}

const collect = (v: string, all: string[]) => [...all, v];

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command("doctor")
    .description("check every network flow this side needs and name what blocks it (exit 1 if one fails)")
    .option(
      "--source",
      "on a source server: F3, F1, F2, F7 with the agent's installed configuration (F1 with --s3-endpoint; before installing, without it, F1 is the package on the control plane)",
    )
    .option("--replicator", "on a replicator host: F3, F4, F6, and F7 from the replicator's side")
    .option("--server", "on the control plane's host: F2, F4, F7 as agents and replicators report them")
    .option("--state-dir <dir>", "the agent's state (source; default: the installed agent's)")
    .option("--endpoint <url>", "the control plane, https://host[:port] (source before install)")
    .option("--join <url>", "the control plane the replicator joins (replicator)")
    .option("--region <region>", "the control plane's region")
    .option("--aws-access-key-id <id>", "access key (default: $AWS_ACCESS_KEY_ID)")
    .option("--aws-secret-access-key <secret>", "its secret (default: $AWS_SECRET_ACCESS_KEY)")
    .option("--ca-file <pem>", "CA certificate of the control plane")
    .option("--ca-fingerprint <sha256>", "pin the control plane's CA by its SHA-256 fingerprint")
    .option("--resolve <NAME=IP>", "static name resolution, repeatable", collect, [])
    .option(
      "--s3-endpoint <host[:port]>",
      "the object-store endpoint (F1 from a source, F6 from a replicator)",
    )
    .option("--bucket <name>", "the installer's bucket (default: ferry-agent-REGION)")
    .option("--path-style", "https://HOST/BUCKET/… instead of https://BUCKET.HOST/…")
    .option("--s3-ca-file <pem>", "CA of the object-store endpoint")
    .option("--listen <host:port>", "where the replicator listens for agents (replicator)", "127.0.0.1:1500")
    .option(
      "--source-address <ip>",
      "a source's address whose return route to check (replicator), repeatable",
      collect,
      [],
    )
    .option("--data-dir <dir>", "the control plane's data directory (server)")
    .option("--database-url <url>", "the control plane's PostgreSQL URL (server)")
    .option(
      "--agent-not-seen-after <seconds>",
      "agents' reports older than this count as missing (server; default: what the running server uses)",
    )
    .option(
      "--replicator-not-seen-after <seconds>",
      "replicators' heartbeats older than this count as missing (server; default: what the running server uses)",
    )
    .option("--timeout-ms <ms>", "per probe", "5000")
    .option("--probe-bytes <n>", "bytes of the data-plane throughput probe", String(4 * 1024 * 1024))
    .option("--json", "print {flows: [{flow, ok, observed, cause, fix}]}")
    .action(async (o: DoctorFlags) => {
      const sides = [o.source, o.replicator, o.server].filter(Boolean).length;
      if (sides !== 1)
        throw new FerryError("USAGE", "say where the doctor runs: --source, --replicator or --server");
      const findings = o.source
        ? await source(o, ctx)
        : o.replicator
          ? await replicator(o, ctx)
          : await server(o, ctx);
      const { renderReport, reportJson } = await import("../net/doctor/report.ts");
      if (o.json) writeJson(ctx.stdout, reportJson(findings));
      else ctx.stdout.write(renderReport(findings));
      if (findings.some((f) => !f.ok)) ctx.exitCode = 1;
    });
}

function credentials(o: DoctorFlags, ctx: CliContext) {
  const accessKeyId = o.awsAccessKeyId ?? ctx.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = o.awsSecretAccessKey ?? ctx.env.AWS_SECRET_ACCESS_KEY;
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

async function s3Options(o: DoctorFlags, region: string) {
  if (!o.s3Endpoint) return {};
  return {
    s3: {
      endpoint: o.s3Endpoint,
      bucket: o.bucket ?? `ferry-agent-${region}`,
      pathStyle: Boolean(o.pathStyle),
      ...(o.s3CaFile ? { caPem: await readFile(o.s3CaFile, "utf8") } : {}),
    },
  };
}

async function source(o: DoctorFlags, ctx: CliContext): Promise<DoctorFinding[]> {
  const { runSourceDoctor } = await import("../net/doctor/source.ts");
  const { parseResolve } = await import("../lib/static-resolve.ts");
  const stateDir = o.stateDir ?? join(PACKAGE_ROOT, "state");
  const installed = existsSync(join(stateDir, "agent.json"));
  if (installed && !o.endpoint) {
    // The agent's own configuration: what `ferry agent run` uses.
    const { loadAgentConfig } = await import("../agent/install.ts");
    const { ReplicatorAssignment } = await import("../model/replicator.ts");
    const c = await loadAgentConfig(stateDir);
    const stored = ReplicatorAssignment.safeParse(c.replicator);
    return runSourceDoctor({
      endpoint: c.endpoint,
      region: c.region,
      credentials: c.agentCredentials,
      ...(c.caFile ? { caPem: await readFile(c.caFile, "utf8") } : {}),
      ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
      hosts: parseResolve([...c.resolve, ...o.resolve]),
      ...(await s3Options(o, c.region)),
      sourceServerID: c.sourceServerID,
      ...(c.dataPlane
        ? {
            clientCertificate: {
              certPem: await readFile(c.dataPlane.certFile, "utf8"),
              keyPem: await readFile(c.dataPlane.keyFile, "utf8"),
            },
          }
        : {}),
      ...(stored.success ? { storedAssignment: stored.data } : {}),
      timeoutMs: Number(o.timeoutMs),
      probeBytes: Number(o.probeBytes),
    });
  }
  if (!o.endpoint || !o.region) {
    throw new FerryError(
      "USAGE",
      `no installed agent in ${stateDir}: give --endpoint and --region (and the install key) to check before installing, or --state-dir`,
    );
  }
  const creds = credentials(o, ctx);
  return runSourceDoctor({
    endpoint: o.endpoint,
    region: o.region,
    ...(creds ? { credentials: creds } : {}),
    ...(o.caFile ? { caPem: await readFile(o.caFile, "utf8") } : {}),
    ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    hosts: parseResolve(o.resolve),
    ...(await s3Options(o, o.region)),
    // Before installing, without an object store: the installer downloads from the control plane.
    packageFromControlPlane: !o.s3Endpoint,
    timeoutMs: Number(o.timeoutMs),
  });
}

async function replicator(o: DoctorFlags, ctx: CliContext): Promise<DoctorFinding[]> {
  const { runReplicatorDoctor } = await import("../net/doctor/replicator.ts");
  const { parseResolve } = await import("../lib/static-resolve.ts");
  const { parseHostPort } = await import("./options.ts");
  const endpoint = o.join ?? o.endpoint;
  if (!endpoint) throw new FerryError("USAGE", "give --join <url>: the control plane the replicator joins");
  const region = o.region ?? ctx.env.AWS_REGION ?? "us-east-1";
  const creds = credentials(o, ctx);
  return runReplicatorDoctor({
    endpoint,
    region,
    ...(creds ? { credentials: creds } : {}),
    ...(o.caFile ? { caPem: await readFile(o.caFile, "utf8") } : {}),
    ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    hosts: parseResolve(o.resolve),
    ...(await s3Options(o, region)),
    listen: parseHostPort(o.listen ?? "127.0.0.1:1500", 1500),
    sourceAddresses: o.sourceAddress,
    timeoutMs: Number(o.timeoutMs),
  });
}

function positiveSeconds(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new FerryError("USAGE", `${flag} '${text}' must be a positive number of seconds`);
  return n;
}

async function server(o: DoctorFlags, ctx: CliContext): Promise<DoctorFinding[]> {
  const { createControlPlane } = await import("../control/index.ts");
  const { readLivenessSettings } = await import("../control/store/settings.ts");
  const { silentLogger } = await import("../lib/log.ts");
  const { runServerDoctor } = await import("../net/doctor/server.ts");
  const agentGiven = positiveSeconds("--agent-not-seen-after", o.agentNotSeenAfter);
  const replicatorGiven = positiveSeconds("--replicator-not-seen-after", o.replicatorNotSeenAfter);
  const cp = await createControlPlane({
    dataDir: o.dataDir ?? ctx.env.FERRY_DATA_DIR ?? join(defaultHome(ctx.env), "server"),
    region: o.region ?? ctx.env.AWS_REGION ?? "us-east-1",
    logger: silentLogger,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
  });
  try {
    // The running server's thresholds (it writes them at start), unless overridden here.
    const running = (await readLivenessSettings(cp.store)) ?? cp.options;
    return runServerDoctor({
      replicators: await cp.store.replicators.list(),
      sourceServers: await cp.store.sourceServers.list(),
      now: cp.options.now(),
      notSeenAfterMs: (agentGiven ?? running.agentNotSeenAfterSeconds) * 1000,
      replicatorNotSeenAfterMs: (replicatorGiven ?? running.replicatorNotSeenAfterSeconds) * 1000,
    });
  } finally {
    await cp.close();
  }
}
