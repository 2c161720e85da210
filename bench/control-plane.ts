/**
 * P7: the control plane with 1,000 source servers. Registers 1,000 agents,
 * then measures DescribeSourceServers (all 1,000 in one page, over HTTPS with
 * the AWS SDK) while the 1,000 agents heartbeat at their report interval
 * (10 s → 100 reports/s). Baseline: GET /healthz on the same connection pool
 * (TLS + HTTP, no signature, no store). The server runs in its own process
 * (`ferry server`), so the load generator does not share its event loop.
 * Prints p50/p99 and the target.
 *
 *   node bench/control-plane.ts [--servers 1000] [--iterations 200] [--postgres]
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "node:https";
import { parseArgs } from "node:util";
import { SignatureV4 } from "@smithy/signature-v4";
import { Hash } from "@smithy/hash-node";
import { DescribeSourceServersCommand, InitializeServiceCommand, MgnClient } from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { main } from "../src/cli/main.ts";
import { registration } from "../src/control/testing.ts";
import type { Credentials } from "../src/control/testing.ts";
import type { TestPostgres } from "../src/control/store/testing-postgres.ts";
import { createDatabase, findPostgresBin, startTestPostgres } from "../src/control/store/testing-postgres.ts";

const { values } = parseArgs({
  options: {
    servers: { type: "string", default: "1000" },
    iterations: { type: "string", default: "200" },
    postgres: { type: "boolean", default: false },
  },
});
const SERVERS = Number(values.servers);
const ITERATIONS = Number(values.iterations);
const REPORT_INTERVAL_S = 10;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

async function run(backend: "sqlite" | "postgresql", databaseUrl?: string) {
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
  const [line] = (await once(child.stdout.setEncoding("utf8"), "data")) as [string];
  const server = JSON.parse(line.split("\n")[0]!) as { endpoint: string; caFile: string };
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
  const ca = readFileSync(server.caFile);
  const agent = new Agent({ keepAlive: true, maxSockets: 16, ca });
  const url = new URL(server.endpoint);
  const signerFor = (c: Credentials) =>
    new SignatureV4({
      credentials: c,
      region: "us-east-1",
      service: "mgn",
      sha256: Hash.bind(null, "sha256"),
    });
  const post = async (signer: SignatureV4, path: string, body: unknown) => {
    const text = JSON.stringify(body);
    const signed = await signer.sign({
      method: "POST",
      protocol: "https:",
      hostname: url.hostname,
      port: Number(url.port),
      path,
      query: {},
      headers: { host: url.host, "content-type": "application/json" },
      body: text,
    });
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        new URL(path, server.endpoint),
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
  };
  const get = (path: string) =>
    new Promise<void>((resolve, reject) => {
      request(new URL(path, server.endpoint), { method: "GET", agent }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      })
        .on("error", reject)
        .end();
    });

  const operator = await key("operator");
  const install = await key("install");
  const mgn = new MgnClient({
    endpoint: server.endpoint,
    region: "us-east-1",
    credentials: operator,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ keepAlive: true, ca }) }),
  });
  try {
    await mgn.send(new InitializeServiceCommand({}));
    const installSigner = signerFor(install);
    const agents: { id: string; signer: SignatureV4 }[] = [];
    const setupStart = performance.now();
    for (let i = 0; i < SERVERS; i += 16) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(16, SERVERS - i) }, (_, j) =>
          post(installSigner, "/ferry/agent/register", registration(`bench-machine-${i + j}`)),
        ),
      );
      for (const r of batch) {
        const b = JSON.parse(r.body) as { sourceServerID: string; agentCredentials: Credentials };
        agents.push({ id: b.sourceServerID, signer: signerFor(b.agentCredentials) });
      }
    }
    const disks = (n: number) => [
      {
        deviceName: "/dev/vda",
        totalStorageBytes: 8 << 30,
        replicatedStorageBytes: n,
        rescannedStorageBytes: 0,
        backloggedStorageBytes: 0,
      },
    ];
    const report = (a: { id: string; signer: SignatureV4 }, n: number) =>
      post(a.signer, "/ferry/agent/report", {
        sourceServerID: a.id,
        dataReplicationState: "CONTINUOUS",
        replicatedDisks: disks(n),
      });
    for (let i = 0; i < agents.length; i += 16)
      await Promise.all(agents.slice(i, i + 16).map((a) => report(a, 8 << 30)));
    const setupSeconds = (performance.now() - setupStart) / 1000;

    // Background heartbeats: every agent once per interval, spread evenly.
    let stop = false;
    let reports = 0;
    let reportFailures = 0;
    const reportLatencies: number[] = [];
    const perSecond = SERVERS / REPORT_INTERVAL_S;
    const heartbeats = (async () => {
      let k = 0;
      const started = performance.now();
      while (!stop) {
        const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
        const pending: Promise<void>[] = [];
        while (k < due && pending.length < 64) {
          const a = agents[k++ % agents.length]!;
          const t0 = performance.now();
          pending.push(
            report(a, 8 << 30).then((r) => {
              reports++;
              if (r.status !== 200) reportFailures++;
              reportLatencies.push(performance.now() - t0);
            }),
          );
        }
        await Promise.all(pending);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    // DescribeSourceServers as the server answers it: signed request to the
    // last byte of the 1,000-item response (raw HTTPS, no SDK deserialization),
    // and end to end through @aws-sdk/client-mgn for reference.
    const operatorSigner = signerFor(operator);
    const health: number[] = [];
    const describe: number[] = [];
    const describeSdk: number[] = [];
    let count = 0;
    for (let i = 0; i < 10; i++) await post(operatorSigner, "/DescribeSourceServers", { maxResults: 1000 }); // warm-up
    for (let i = 0; i < ITERATIONS; i++) {
      let t0 = performance.now();
      await get("/healthz");
      health.push(performance.now() - t0);
      t0 = performance.now();
      const res = await post(operatorSigner, "/DescribeSourceServers", { maxResults: 1000 });
      describe.push(performance.now() - t0);
      if (res.status !== 200)
        throw new Error(`DescribeSourceServers answered ${res.status}: ${res.body.slice(0, 200)}`);
      if (i % 4 === 0) {
        t0 = performance.now();
        const out = await mgn.send(new DescribeSourceServersCommand({ maxResults: 1000 }));
        describeSdk.push(performance.now() - t0);
        count = out.items?.length ?? 0;
      }
    }
    stop = true;
    await heartbeats;
    const h = summary(health);
    const d = summary(describe);
    const r = summary(reportLatencies);
    const sdk = summary(describeSdk);
    return { backend, servers: count, setupSeconds, h, d, sdk, r, reports, reportFailures };
  } finally {
    mgn.destroy();
    agent.destroy();
    child.kill("SIGTERM");
    await once(child, "exit");
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [await run("sqlite")];
let pg: TestPostgres | undefined;
if (values.postgres && findPostgresBin()) {
  pg = await startTestPostgres();
  try {
    results.push(await run("postgresql", await createDatabase(pg.url, `bench_${process.pid}`)));
  } finally {
    await pg.stop();
  }
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
console.log(
  `P7 control plane: DescribeSourceServers with ${SERVERS} source servers, ${ITERATIONS} calls, agents reporting every ${REPORT_INTERVAL_S} s`,
);
console.log(
  "backend    | baseline GET /healthz p50 / p99 | DescribeSourceServers p50 / p99 | p99 / target (100 ms) | via SDK p50 / p99 | heartbeat p50 / p99 (reports, failed)",
);
for (const x of results) {
  console.log(
    `${x.backend.padEnd(10)} | ${ms(x.h.p50)} / ${ms(x.h.p99)} | ${ms(x.d.p50)} / ${ms(x.d.p99)} (${x.servers} items) | ${(x.d.p99 / 100).toFixed(2)} | ${ms(x.sdk.p50)} / ${ms(x.sdk.p99)} | ${ms(x.r.p50)} / ${ms(x.r.p99)} (${x.reports}, ${x.reportFailures})`,
  );
}
console.log(
  `setup (register + first report of ${SERVERS} agents): ${results.map((x) => `${x.backend} ${x.setupSeconds.toFixed(1)} s`).join(", ")}`,
);
