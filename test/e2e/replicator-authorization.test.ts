/**
 * The data plane follows the control plane, end to end: a real control
 * plane (1 s heartbeats), a real `ferry replicator run --join` and two
 * source servers registered like agents, each with its data-plane
 * certificate. Both replicate → DisconnectFromService of one → its live
 * session ends at its first write after the next heartbeat, naming the
 * server and why → a new HELLO with the same certificate is refused with
 * the same words → the other server, still connected, replicates on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { Agent } from "node:https";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { DisconnectFromServiceCommand, InitializeServiceCommand, MgnClient } from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { z } from "zod";
import { replicateDisk } from "../../src/agent/sync.ts";
import type { ReplicatorEndpoint } from "../../src/agent/client.ts";
import { main } from "../../src/cli/main.ts";
import { startServer } from "../../src/control/index.ts";
import { createCsr } from "../../src/lib/pki.ts";
import { createSignedClient } from "../../src/lib/signed-client.ts";
import { silentLogger } from "../../src/lib/log.ts";
import { AGENT_REGISTER_PATH } from "../../src/model/agent-api.ts";
import { ReplicatorAssignment } from "../../src/model/replicator.ts";
import type { ErrorFrame } from "../../src/wire/index.ts";
import { createScratch } from "../support/loop.ts";
import { sha256File, stagingImage } from "../support/data-plane.ts";
import { hello, rawConnect, type RawSession } from "../support/raw-client.ts";

const REGION = "us-east-1";

/** What this test reads of the registration's answer. */
const Registered = z.object({
  sourceServerID: z.string(),
  replicator: ReplicatorAssignment.optional(),
  dataPlaneCertificate: z.object({ certificatePem: z.string() }),
});

test("a disconnected server's certificate stops writing at the next heartbeat; others replicate on", async () => {
  const scratch = await createScratch();
  try {
    const cp = await startServer({
      dataDir: join(scratch.dir, "server"),
      host: "127.0.0.1",
      port: 0,
      region: REGION,
      reportIntervalSeconds: 1,
      certNames: ["127.0.0.1", "localhost"],
      logger: silentLogger,
    });
    scratch.defer(() => cp.close());
    const caPem = await readFile(cp.caFile, "utf8");
    const operator = await cp.controlPlane.accessKeys.create("operator", "test");
    const mgn = new MgnClient({
      endpoint: cp.url,
      region: REGION,
      credentials: { accessKeyId: operator.accessKeyId, secretAccessKey: operator.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: caPem }) }),
    });
    scratch.defer(async () => mgn.destroy());
    await mgn.send(new InitializeServiceCommand({}));

    // The replicator, as an operator runs it on its own host.
    const replicatorKey = await cp.controlPlane.accessKeys.create("replicator", "test");
    const stop = new AbortController();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let logs = "";
    stderr.on("data", (d: Buffer) => (logs += d.toString()));
    let out = "";
    const listening = new Promise<void>((resolve) =>
      stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\n")) resolve();
      }),
    );
    const dataDir = join(scratch.dir, "replicator");
    const running = main(
      [
        "replicator",
        "run",
        "--join",
        cp.url,
        "--ca-file",
        cp.caFile,
        "--access-key-id",
        replicatorKey.accessKeyId,
        "--secret-access-key",
        replicatorKey.secretAccessKey,
        "--region",
        REGION,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dataDir,
        "--name",
        "r1",
        "--json",
      ],
      { stdout, stderr, isTTY: false, env: {}, signal: stop.signal },
    );
    scratch.defer(async () => {
      stop.abort();
      await running;
    });
    await Promise.race([listening, running.then(() => assert.fail(`the replicator stopped: ${logs}`))]);
    const rep = JSON.parse(out.split("\n")[0]!) as { host: string; port: number; fingerprint: string };

    // Two source servers, registered as agents do: a key, an assignment and a data-plane certificate each.
    const install = await cp.controlPlane.accessKeys.create("install", "test");
    const agents = createSignedClient({ endpoint: cp.url, region: REGION, credentials: install, caPem });
    scratch.defer(async () => agents.close());
    const register = async (identity: string) => {
      const { csrPem, keyPem } = await createCsr(`ferry-agent ${identity}`);
      const answer = await agents.call(
        AGENT_REGISTER_PATH,
        { identity, csr: csrPem, sourceProperties: { disks: [{ deviceName: "/dev/vda", bytes: 1 }] } },
        Registered,
      );
      assert.equal(answer.replicator?.address, `127.0.0.1:${rep.port}`, "assigned to the joined replicator");
      const endpoint: ReplicatorEndpoint = {
        host: "127.0.0.1",
        port: rep.port,
        fingerprint: rep.fingerprint,
        token: "",
        clientCertificate: { certPem: answer.dataPlaneCertificate.certificatePem, keyPem },
      };
      return { id: answer.sourceServerID, endpoint };
    };
    const a = await register("authz-e2e-machine-a");
    const b = await register("authz-e2e-machine-b");

    const disk = join(scratch.dir, "b.img");
    await writeFile(disk, randomBytes(2 * 1024 * 1024));
    const syncB = async () => {
      await replicateDisk({
        sourcePath: disk,
        sourceServerId: b.id,
        diskId: "d0",
        endpoint: b.endpoint,
        stateDir: join(scratch.dir, "state-b"),
        maxReconnects: 0,
      });
      assert.equal(await sha256File(await stagingImage(dataDir, b.id, "d0")), await sha256File(disk));
    };
    // B is replicated by the real agent's sync milliseconds after its assignment: almost always before a
    // heartbeat listed it, so its HELLO passes by the replicator asking the control plane again.
    await syncB();

    // A: a live session that keeps writing (one ZERO frame every 50 ms) until the replicator ends it.
    const open = async (): Promise<RawSession> => {
      const s = await rawConnect(a.endpoint);
      s.conn.send(hello(a.endpoint, a.id, "d0", 1024 * 1024));
      return s;
    };
    const live = await open();
    await live.next("WELCOME");
    // And an idle session of A's second disk, which sends nothing: the heartbeat answer ends it too.
    const idle = await rawConnect(a.endpoint);
    idle.conn.send(hello(a.endpoint, a.id, "d1", 1024 * 1024));
    await idle.next("WELCOME");
    let seq = 0n;
    const writer = setInterval(() => {
      seq++;
      live.conn.send({ type: "ZERO", seq, offset: (seq % 16n) * 65536n, length: 65536n });
    }, 50);
    scratch.defer(async () => clearInterval(writer));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(live.frames.filter((f) => f.type === "ERROR").length, 0, "A replicates while connected");

    await mgn.send(new DisconnectFromServiceCommand({ sourceServerID: a.id }));
    await Promise.race([
      live.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error("A's session is still open")), 5000)),
    ]);
    clearInterval(writer);
    const ended = live.frames.find((f): f is ErrorFrame => f.type === "ERROR");
    assert.ok(ended, `an ERROR frame ended A's session (got ${live.frames.map((f) => f.type).join(",")})`);
    assert.equal(ended.code, "AUTH_FAILED");
    assert.match(
      ended.message,
      new RegExp(
        `source server ${a.id} is disconnected from the service .*reinstall the agent to replicate again`,
      ),
    );
    await Promise.race([
      idle.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error("A's idle session is still open")), 5000)),
    ]);
    const idleEnded = idle.frames.find((f): f is ErrorFrame => f.type === "ERROR");
    assert.equal(
      idleEnded?.code,
      "AUTH_FAILED",
      "the idle session was ended by the replicator, not timed out",
    );
    assert.equal(idleEnded.message, ended.message);

    const again = await open();
    await again.closed;
    const refused = again.frames.find((f): f is ErrorFrame => f.type === "ERROR");
    assert.equal(refused?.code, "AUTH_FAILED");
    assert.equal(refused.message, ended.message);
    assert.ok(!again.frames.some((f) => f.type === "WELCOME"));

    // B, still connected to the service, replicates on (a new sync of changed data).
    await writeFile(disk, randomBytes(2 * 1024 * 1024));
    await syncB();
  } finally {
    await scratch.cleanup();
  }
});
