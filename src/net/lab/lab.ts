/**
 * A running lab, as its state record describes it: its hosts, endpoints and
 * processes, commands run inside its namespaces, the operator's API calls,
 * and the knobs (knobs.ts) with their inverses. Made by `startLab` or
 * attached to by `openLab` (index.ts); `close()` tears it down by the record
 * whatever happened. Requires root.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { createCa } from "../../lib/pki.ts";
import type { HostRole, LabHost, LabPlan } from "./plan.ts";
import { hostOf, SERVICE_PORT } from "./plan.ts";
import * as knobs from "./knobs.ts";
import type { LabEndpoints, LabProcess, LabState } from "./state.ts";
import { saveState } from "./state.ts";
import { FERRY, startControlPlane, startProcess, waitForLine } from "./services.ts";
import { nsTryRun, run, type RunOptions, type RunResult } from "./system.ts";
import { endProcess, tearDown, type TeardownReport } from "./teardown.ts";

export class Lab {
  readonly state: LabState;
  readonly env: NodeJS.ProcessEnv;

  constructor(state: LabState, env: NodeJS.ProcessEnv = process.env) {
    this.state = state;
    this.env = env;
  }

  get id(): string {
    return this.state.id;
  }
  get plan(): LabPlan {
    return this.state.plan;
  }
  get dir(): string {
    return this.state.dir;
  }
  get endpoints(): LabEndpoints {
    if (!this.state.endpoints) throw new FerryError("LAB_NOT_UP", `lab ${this.id} has no services running`);
    return this.state.endpoints;
  }

  save(): Promise<void> {
    return saveState(this.state, this.env);
  }

  host(role: HostRole): LabHost {
    return hostOf(this.plan, role);
  }

  /** Runs a command inside a host's namespace (bounded; 30 s by default); never throws for its exit code. */
  exec(role: HostRole, cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
    return nsTryRun(this.host(role).ns, cmd, args, o);
  }

  /** Starts a long-running process in a host's namespace; recorded, ended at teardown. */
  spawn(
    role: HostRole,
    name: string,
    cmd: string,
    args: string[],
    env?: NodeJS.ProcessEnv,
  ): Promise<LabProcess> {
    return startProcess(this, this.host(role).ns, name, cmd, args, env);
  }

  /** Ends a process started by `spawn` (SIGTERM, then SIGKILL), by name. */
  async stop(name: string): Promise<void> {
    const p = this.state.processes.find((x) => x.name === name);
    if (!p) return;
    await endProcess(p.pid, p.ns);
    this.state.processes = this.state.processes.filter((x) => x !== p);
    await this.save();
  }

  process(name: string): LabProcess | undefined {
    return this.state.processes.find((x) => x.name === name);
  }

  waitForLine(p: LabProcess, pred: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return waitForLine(p, pred, timeoutMs);
  }

  /**
   * An image of `bytes` attached to a loop device: the source host's disk.
   * The caller writes what it wants into `device`; detached at teardown.
   */
  async addSourceDisk(bytes: number): Promise<{ image: string; device: string }> {
    const image = join(this.dir, "source", `disk${this.state.loops.length}.img`);
    await mkdir(dirname(image), { recursive: true });
    await run("truncate", ["-s", String(bytes), image]);
    const device = (await run("losetup", ["--find", "--show", image])).trim();
    this.state.loops.push({ device, image });
    await this.save();
    return { image, device };
  }

  /**
   * The environment of programs run as the source host: its own machine id and
   * an empty /sys for disk discovery (so only `--devices` disks are replicated,
   * never this machine's root disk), and node on PATH for the agent package.
   */
  sourceEnv(): NodeJS.ProcessEnv {
    const source = join(this.dir, "source");
    return {
      PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: source,
      FERRY_SYS_ROOT: join(source, "fake-root"),
      FERRY_MACHINE_ID_FILE: join(source, "machine-id"),
    };
  }

  /** Builds the agent package and publishes it (and the installer) to the object store, as an operator. */
  async publishAgentPackage(): Promise<{ installerUrl: string; sha256: string }> {
    const dist = join(this.dir, "dist");
    const built = JSON.parse(
      await run(FERRY, ["release", "build", "--no-runtime", "--out-dir", dist, "--json"], {
        timeoutMs: 120_000,
      }),
    ) as { sha256: string };
    const os = this.endpoints.objectStore;
    // From the object-store host itself (over its loopback): the operator's upload is not a flow under test.
    const r = await this.exec(
      "objectStore",
      FERRY,
      [
        "release",
        "publish",
        "--s3-endpoint",
        os.endpoint,
        "--region",
        this.plan.names.region,
        "--bucket",
        os.bucket,
        "--package-dir",
        dist,
        "--aws-access-key-id",
        os.credentials.accessKeyId,
        "--aws-secret-access-key",
        os.credentials.secretAccessKey,
        "--ca-file",
        os.caFile,
        "--json",
      ],
      { timeoutMs: 120_000 },
    );
    if (r.code !== 0)
      throw new FerryError("LAB_PUBLISH_FAILED", `ferry release publish failed: ${r.stderr.trim()}`);
    return { installerUrl: os.installerUrl, sha256: built.sha256 };
  }

  /**
   * Calls an MGN API operation (`DescribeSourceServers`, …) with SigV4 through
   * curl, from a host: "source" goes through the private link and the
   * source's firewall position (the flow under test); "service" (default) is
   * the operator on the control plane's own host, which no knob but the clock
   * skew breaks. Names are pinned with --resolve, never looked up.
   */
  async mgn<T = Record<string, unknown>>(
    operation: string,
    body: unknown = {},
    o: { from?: HostRole; credentials?: { accessKeyId: string; secretAccessKey: string } } = {},
  ): Promise<T> {
    const cp = this.endpoints.controlPlane;
    const key = o.credentials ?? this.endpoints.keys.operator;
    const r = await this.exec(
      o.from ?? "service",
      "curl",
      [
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "--cacert",
        cp.caFile,
        "--resolve",
        `${this.plan.names.service}:${SERVICE_PORT}:${this.host("service").address}`,
        "--aws-sigv4",
        `aws:amz:${this.plan.names.region}:mgn`,
        "--user",
        `${key.accessKeyId}:${key.secretAccessKey}`,
        "--header",
        "content-type: application/json",
        "--data-binary",
        "@-",
        "--write-out",
        "\n%{http_code}",
        `${cp.endpoint}/${operation}`,
      ],
      { input: JSON.stringify(body), timeoutMs: 30_000 },
    );
    const cut = r.stdout.lastIndexOf("\n");
    const status = Number(r.stdout.slice(cut + 1));
    const text = r.stdout.slice(0, Math.max(cut, 0));
    if (r.code !== 0 || status < 200 || status >= 300) {
      throw new FerryError(
        "LAB_API_CALL_FAILED",
        `${operation} from ${o.from ?? "service"} failed (curl exit ${r.code}, HTTP ${status}): ${(text || r.stderr).trim().slice(0, 500)}`,
        { details: { operation, status, body: text } },
      );
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * The source servers as the control plane's store holds them (`ferry
   * source-server list --json` on its data dir, no network): readable while
   * the clock-skew knob makes every signed call fail. "Not seen" is judged by
   * the running server's threshold, which it keeps in the store.
   */
  async sourceServers<T = Record<string, unknown>>(): Promise<T[]> {
    const cp = this.endpoints.controlPlane;
    const out = await run(FERRY, [
      "source-server",
      "list",
      "--data-dir",
      cp.dataDir,
      "--region",
      this.plan.names.region,
      "--json",
    ]);
    return JSON.parse(out) as T[];
  }

  /** The CA fingerprint the lab gives the installer and the agent: the control plane's, or a wrong one while that knob is on. */
  get agentCaFingerprint(): string {
    return this.state.knobs["wrong-ca-fingerprint"]?.detail ?? this.endpoints.controlPlane.caFingerprint;
  }

  /**
   * ferry-installer-init's arguments for the source host: --endpoint (the
   * service name), --s3-endpoint (the object-store name), the install key,
   * the CA pinned by fingerprint, the lab CA for the object store. With
   * `resolve`, every name is also pinned with --resolve.
   */
  installerArgs(o: { devices: string[]; installDir: string; resolve?: boolean; extra?: string[] }): string[] {
    const e = this.endpoints;
    const names = this.plan.names;
    const resolve = o.resolve
      ? [
          `${names.service}=${this.host("service").address}`,
          `${names.objectStore}=${this.host("objectStore").address}`,
          `${names.bucketHost}=${this.host("objectStore").address}`,
        ].flatMap((r) => ["--resolve", r])
      : [];
    return [
      "--region",
      names.region,
      "--endpoint",
      e.controlPlane.endpoint,
      "--aws-access-key-id",
      e.keys.install.accessKeyId,
      "--aws-secret-access-key",
      e.keys.install.secretAccessKey,
      "--ca-fingerprint",
      this.agentCaFingerprint,
      "--s3-endpoint",
      e.objectStore.endpoint,
      "--s3-ca-file",
      e.objectStore.caFile,
      ...resolve,
      "--no-prompt",
      "--devices",
      o.devices.join(","),
      "--install-dir",
      o.installDir,
      "--no-systemd",
      ...(o.extra ?? []),
    ];
  }

  // --- knobs (see the header of test/support/lab.ts) ----------------------
  blockDataPlane(replicators?: HostRole[]): Promise<void> {
    return knobs.blockDataPlane(this, replicators);
  }
  allowDataPlane(): Promise<void> {
    return knobs.allowDataPlane(this);
  }
  blockObjectStore(from?: "source" | "replicators" | "all"): Promise<void> {
    return knobs.blockObjectStore(this, from);
  }
  allowObjectStore(): Promise<void> {
    return knobs.allowObjectStore(this);
  }
  removeServiceHostsLine(host?: HostRole): Promise<void> {
    return knobs.removeServiceHostsLine(this, host);
  }
  restoreServiceHostsLine(): Promise<void> {
    return knobs.restoreServiceHostsLine(this);
  }
  removeReturnRoute(hosts?: HostRole[]): Promise<void> {
    return knobs.removeReturnRoute(this, hosts);
  }
  restoreReturnRoute(): Promise<void> {
    return knobs.restoreReturnRoute(this);
  }

  /**
   * Sets `dataPlaneRouting` of one source server (UpdateReplicationConfiguration)
   * or, without an id, of every replication template (servers registered
   * later). Replicators are registered with a public address in TEST-NET-2
   * that exists nowhere: PUBLIC_IP sends the agent where only the private link
   * would have carried it. PRIVATE_IP is the inverse.
   */
  async setDataPlaneRouting(routing: "PUBLIC_IP" | "PRIVATE_IP", sourceServerID?: string): Promise<void> {
    if (sourceServerID) {
      await this.mgn("UpdateReplicationConfiguration", { sourceServerID, dataPlaneRouting: routing });
    } else {
      const t = await this.mgn<{ items?: { replicationConfigurationTemplateID: string }[] }>(
        "DescribeReplicationConfigurationTemplates",
        {},
      );
      for (const item of t.items ?? []) {
        await this.mgn("UpdateReplicationConfigurationTemplate", {
          replicationConfigurationTemplateID: item.replicationConfigurationTemplateID,
          dataPlaneRouting: routing,
        });
      }
    }
    await knobs.markKnob(
      this,
      "data-plane-routing",
      routing === "PUBLIC_IP"
        ? `PUBLIC_IP${sourceServerID ? ` for ${sourceServerID}` : " in the templates"}`
        : undefined,
    );
  }

  /** From now on `agentCaFingerprint` (and `installerArgs`) carry the fingerprint of another CA. */
  async useWrongCaFingerprint(): Promise<string> {
    const wrong =
      this.state.knobs["wrong-ca-fingerprint"]?.detail ??
      (await createCa("not the lab's control plane")).fingerprint;
    await knobs.markKnob(this, "wrong-ca-fingerprint", wrong);
    return wrong;
  }
  async useRightCaFingerprint(): Promise<void> {
    await knobs.markKnob(this, "wrong-ca-fingerprint", undefined);
  }

  /**
   * Restarts the control plane with its clock `seconds` off (negative: behind);
   * 0 restarts it on the true clock. Beyond 5 minutes every signed request is
   * refused as expired — the operator's `mgn()` calls too, while it lasts.
   */
  async skewServerClock(seconds: number): Promise<void> {
    await this.stop("control-plane");
    const controlPlane = await startControlPlane(
      this,
      seconds,
      this.endpoints.controlPlane.agentNotSeenAfterSeconds,
    );
    this.state.endpoints = { ...this.endpoints, controlPlane };
    await knobs.markKnob(this, "clock-skew", seconds ? `${seconds} s` : undefined);
  }
  restoreServerClock(): Promise<void> {
    return this.skewServerClock(0);
  }

  /** Tears everything down by the state record; safe to call twice. */
  async close(): Promise<TeardownReport> {
    return tearDown(this.state, this.env);
  }
}
