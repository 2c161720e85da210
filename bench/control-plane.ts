/**
 * P7: the control plane with 1,000 source servers. Registers 1,000 agents,
 * then measures DescribeSourceServers (all 1,000 in one page): first with the
 * agents idle, then while all 1,000 heartbeat at their report interval
 * (10 s → 100 reports/s, sent from a worker thread). The server runs in its
 * own process (`ferry server`); the baseline is GET /healthz on the same
 * connection pool (TLS + HTTP, no signature, no store). Prints p50/p99 and
 * the ratio to the target.
 *
 *   node bench/control-plane.ts [--servers 1000] [--iterations 200] [--postgres]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "node:https";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { SignatureV4 } from "@smithy/signature-v4";
import { Hash } from "@smithy/hash-node";
import { DescribeSourceServersCommand, MgnClient } from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { main } from "../src/cli/main.ts";
import { registration } from "../src/control/testing.ts";
import type { Credentials } from "../src/control/testing.ts";
import type { TestPostgres } from "../src/control/store/testing-postgres.ts";
import { createDatabase, findPostgresBin, startTestPostgres } from "../src/control/store/testing-postgres.ts";

const REPORT_INTERVAL_S = 10;
const DISK_BYTES = 8 * 2 ** 30;

interface Endpoint {
  endpoint: string;
  caFile: string;
}
interface AgentCreds {
  id: string;
  creds: Credentials;
}

/** A keep-alive HTTPS client that signs JSON POSTs with SigV4 (node crypto SHA-256). */
function httpClient(ep: Endpoint) {
  const agent = new Agent({ keepAlive: true, maxSockets: 16, ca: readFileSync(ep.caFile) });
  const url = new URL(ep.endpoint);
  const signers = new Map<string, SignatureV4>();
  const signerFor = (c: Credentials) => {
    let s = signers.get(c.accessKeyId);
    if (!s)
      signers.set(
        c.accessKeyId,
        (s = new SignatureV4({
          credentials: c,
          region: "us-east-1",
          service: "mgn",
          sha256: Hash.bind(null, "sha256"),
        })),
      );
    return s;
  };
  return {
    async post(creds: Credentials, path: string, body: unknown): Promise<{ status: number; body: string }> {
      const text = JSON.stringify(body);
      const signed = await signerFor(creds).sign({
        method: "POST",
        protocol: "https:",
        hostname: url.hostname,
        port: Number(url.port),
        path,
        query: {},
        headers: { host: url.host, "content-type": "application/json" },
        body: text,
      });
      return new Promise((resolve, reject) => {
        const req = request(
          new URL(path, ep.endpoint),
          { method: "POST", headers: signed.headers, agent },
          (res) => {
            let data = "";
            res.on("data", (c: Buffer) => (data += c.toString("utf8")));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
          },
        );
        req.on("error", reject);
        req.end(text);
      });
    },
    get(path: string): Promise<void> {
      return new Promise((resolve, reject) => {
        request(new URL(path, ep.endpoint), { method: "GET", agent }, (res) => {
          res.resume();
          res.on("end", () => resolve());
        })
          .on("error", reject)
          .end();
      });
    },
    close: () => agent.destroy(),
  };
}

function reportBody(id: string) {
  return {
    sourceServerID: id,
    dataReplicationState: "CONTINUOUS",
    replicatedDisks: [
      {
        deviceName: "/dev/vda",
        totalStorageBytes: DISK_BYTES,
        replicatedStorageBytes: DISK_BYTES,
        rescannedStorageBytes: 0,
        backloggedStorageBytes: 0,
      },
    ],
  };
}

/** User + system CPU time of a process in ms (Linux /proc; clock ticks of 10 ms). */
function serverCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
  return { p50: at(50), p99: at(99), n: s.length };
}

/** The heartbeat load, in a worker thread: every agent once per interval, spread evenly. */
async function heartbeatWorker(): Promise<void> {
  const { ep, agents } = workerData as { ep: Endpoint; agents: AgentCreds[] };
  const client = httpClient(ep);
  const perSecond = agents.length / REPORT_INTERVAL_S;
  const latencies: number[] = [];
  let failures = 0;
  let stop = false;
  parentPort!.once("message", () => (stop = true));
  const started = performance.now();
  let k = 0;
  while (!stop) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    const pending: Promise<void>[] = [];
    while (k < due && pending.length < 64) {
      const a = agents[k++ % agents.length]!;
      const t0 = performance.now();
      pending.push(
        client.post(a.creds, "/ferry/agent/report", reportBody(a.id)).then((r) => {
          if (r.status !== 200) failures++;
          latencies.push(performance.now() - t0);
        }),
      );
    }
    await Promise.all(pending);
    await new Promise((r) => setTimeout(r, 5));
  }
  client.close();
  parentPort!.postMessage({ latencies, failures });
}

async function measureDescribe(ep: Endpoint, operator: Credentials, iterations: number) {
  const client = httpClient(ep);
  const mgn = new MgnClient({
    endpoint: ep.endpoint,
    region: "us-east-1",
    credentials: operator,
    requestHandler: new NodeHttpHandler({
      httpsAgent: new Agent({ keepAlive: true, ca: readFileSync(ep.caFile) }),
    }),
  });
  const health: number[] = [];
  const raw: number[] = [];
  const sdk: number[] = [];
  let items = 0;
  try {
    for (let i = 0; i < 10; i++) await client.post(operator, "/DescribeSourceServers", { maxResults: 1000 });
    for (let i = 0; i < iterations; i++) {
      let t0 = performance.now();
      await client.get("/healthz");
      health.push(performance.now() - t0);
      // As the server answers it: signed request to the last byte of the response.
      t0 = performance.now();
      const res = await client.post(operator, "/DescribeSourceServers", { maxResults: 1000 });
      raw.push(performance.now() - t0);
      if (res.status !== 200)
        throw new Error(`DescribeSourceServers answered ${res.status}: ${res.body.slice(0, 200)}`);
      if (i % 4 === 0) {
        // End to end through the AWS SDK (adds its deserialization), for reference.
        t0 = performance.now();
        items = (await mgn.send(new DescribeSourceServersCommand({ maxResults: 1000 }))).items?.length ?? 0;
        sdk.push(performance.now() - t0);
      }
    }
  } finally {
    mgn.destroy();
    client.close();
  }
  return { health: summary(health), raw: summary(raw), sdk: summary(sdk), items };
}

async function run(backend: string, servers: number, iterations: number, databaseUrl?: string) {
  const dir = mkdtempSync(join(tmpdir(), "ferry-bench-cp-"));
  const dbArgs = databaseUrl ? ["--database-url", databaseUrl] : [];
  const child = spawn(
    process.execPath,
    [
      "--disable-warning=ExperimentalWarning",
      join(import.meta.dirname, "../src/cli/main.ts"),
      "server",
      "--json",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      dir,
      "--cert-name",
      "127.0.0.1",
      ...dbArgs,
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  try {
    const [line] = (await once(child.stdout.setEncoding("utf8"), "data")) as [string];
    const ep = JSON.parse(line.split("\n")[0]!) as Endpoint;
    const key = async (scope: string): Promise<Credentials> => {
      const out = new PassThrough();
      let text = "";
      out.on("data", (c: Buffer) => (text += c.toString("utf8")));
      const ctx = {
        stdout: out,
        stderr: new PassThrough(),
        isTTY: false,
        env: {},
        signal: new AbortController().signal,
      };
      await main(["access-key", "create", "--scope", scope, "--json", "--data-dir", dir, ...dbArgs], ctx);
      return JSON.parse(text) as Credentials;
    };
    const operator = await key("operator");
    const install = await key("install");
    const client = httpClient(ep);
    const setupStart = performance.now();
    await client.post(operator, "/InitializeService", {});
    const agents: AgentCreds[] = [];
    for (let i = 0; i < servers; i += 16) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(16, servers - i) }, (_, j) =>
          client.post(install, "/ferry/agent/register", registration(`bench-machine-${i + j}`)),
        ),
      );
      for (const r of batch) {
        const b = JSON.parse(r.body) as { sourceServerID: string; agentCredentials: Credentials };
        agents.push({ id: b.sourceServerID, creds: b.agentCredentials });
      }
    }
    for (let i = 0; i < agents.length; i += 16)
      await Promise.all(
        agents.slice(i, i + 16).map((a) => client.post(a.creds, "/ferry/agent/report", reportBody(a.id))),
      );
    client.close();
    const setupSeconds = (performance.now() - setupStart) / 1000;

    // Server CPU time is what contention on a shared machine does not distort.
    let cpu = serverCpuMs(child.pid!);
    const idle = await measureDescribe(ep, operator, iterations);
    const describeCalls = 10 + iterations + Math.ceil(iterations / 4);
    const cpuPerDescribe = (serverCpuMs(child.pid!) - cpu) / describeCalls;
    const worker = new Worker(new URL(import.meta.url), { workerData: { ep, agents } });
    await new Promise((r) => setTimeout(r, 1000)); // let the heartbeat rate settle
    cpu = serverCpuMs(child.pid!);
    const busyStart = performance.now();
    const busy = await measureDescribe(ep, operator, iterations);
    const busyUtilization = (serverCpuMs(child.pid!) - cpu) / (performance.now() - busyStart);
    worker.postMessage("stop");
    const [hb] = (await once(worker, "message")) as [{ latencies: number[]; failures: number }];
    await worker.terminate();
    return {
      backend,
      setupSeconds,
      cpuPerDescribe,
      busyUtilization,
      idle,
      busy,
      heartbeat: { ...summary(hb.latencies), failures: hb.failures },
    };
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchMain(): Promise<void> {
  const { values } = parseArgs({
    options: {
      servers: { type: "string", default: "1000" },
      iterations: { type: "string", default: "200" },
      postgres: { type: "boolean", default: false },
    },
  });
  const servers = Number(values.servers);
  const iterations = Number(values.iterations);
  const results = [await run("sqlite", servers, iterations)];
  let pg: TestPostgres | undefined;
  if (values.postgres && findPostgresBin()) {
    pg = await startTestPostgres();
    try {
      results.push(
        await run("postgresql", servers, iterations, await createDatabase(pg.url, `bench_${process.pid}`)),
      );
    } finally {
      await pg.stop();
    }
  }
  const ms = (x: number) => `${x.toFixed(1)}`;
  console.log(
    `P7 control plane: DescribeSourceServers over HTTPS with ${servers} source servers (${iterations} calls per phase); target p99 < 100 ms`,
  );
  console.log(
    "backend    | agents      | baseline /healthz p50/p99 ms | DescribeSourceServers p50/p99 ms | p99/target | via SDK p50/p99 ms",
  );
  for (const x of results) {
    for (const [phase, m] of [
      ["idle", x.idle],
      [`${servers / REPORT_INTERVAL_S} reports/s`, x.busy],
    ] as const) {
      console.log(
        `${x.backend.padEnd(10)} | ${phase.padEnd(11)} | ${ms(m.health.p50)} / ${ms(m.health.p99)} | ${ms(m.raw.p50)} / ${ms(m.raw.p99)} (${m.items} items) | ${(m.raw.p99 / 100).toFixed(2)} | ${ms(m.sdk.p50)} / ${ms(m.sdk.p99)}`,
      );
    }
    console.log(
      `${x.backend.padEnd(10)} | heartbeats: ${x.heartbeat.n} reports, p50/p99 ${ms(x.heartbeat.p50)} / ${ms(x.heartbeat.p99)} ms, ${x.heartbeat.failures} failed; setup (register + first report of ${servers}) ${x.setupSeconds.toFixed(1)} s`,
    );
    console.log(
      `${x.backend.padEnd(10)} | server CPU: ${x.cpuPerDescribe.toFixed(1)} ms per DescribeSourceServers (idle agents); ${(x.busyUtilization * 100).toFixed(0)}% of a core while heartbeating and describing`,
    );
  }
}

if (isMainThread) await benchMain();
else await heartbeatWorker();
