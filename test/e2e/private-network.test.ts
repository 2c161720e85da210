/**
 * The reference private-network setup, end to end (test/support/lab.ts): on
 * the source host, the installer is downloaded from the object-store
 * endpoint by its virtual-hosted name, run with --endpoint and --s3-endpoint
 * (names from the source's hosts file), registers through the service API
 * endpoint, and the agent replicates a loop device to the replicator's
 * private address (dataPlaneRouting PRIVATE_IP) over the private link until
 * DescribeSourceServers — asked from the source, through the endpoint — shows
 * CONTINUOUS; the replica is then verified block for block. The lab is torn
 * down whatever happens, and the test checks that nothing is left.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { createLab, labUnavailable, type Lab } from "../support/lab.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const FERRY = join(ROOT, "bin", "ferry");
const MiB = 1024 * 1024;

interface SourceServer {
  sourceServerID: string;
  dataReplicationInfo?: {
    dataReplicationState?: string;
    replicatedDisks?: { deviceName?: string; totalStorageBytes?: number; replicatedStorageBytes?: number }[];
  };
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Packets the rule with `comment` accepted on a host (iptables counters). */
async function acceptedBy(lab: Lab, role: Parameters<Lab["exec"]>[0], comment: string): Promise<number> {
  const r = await lab.exec(role, "iptables", ["-w", "5", "-L", "INPUT", "-v", "-n", "-x"]);
  const line = r.stdout.split("\n").find((l) => l.includes(comment));
  assert.ok(line, `no rule "${comment}" on ${role}:\n${r.stdout}`);
  return Number(line.trim().split(/\s+/)[0]);
}

async function logTail(lab: Lab, name: string): Promise<string> {
  const p = lab.process(name);
  return p ? (await readFile(p.stderrFile, "utf8").catch(() => "")).slice(-3000) : "";
}

test(
  "private network: installer through the object-store endpoint, registration through the service endpoint, PRIVATE_IP replication to CONTINUOUS, replica identical",
  { skip: labUnavailable(), timeout: 170_000 },
  async (t) => {
    const t0 = Date.now();
    const phase = (what: string) => t.diagnostic(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const lab = await createLab();
    phase("lab up");
    const namespaces = lab.plan.hosts.map((h) => h.ns);
    let device = "";
    try {
      const names = lab.plan.names;
      const rep = lab.endpoints.replicators[0]!;
      await lab.publishAgentPackage();
      phase("agent package published");

      // No default route anywhere: nothing leaves the lab, by construction.
      for (const h of lab.plan.hosts) {
        const r = await lab.exec(h.role, "ip", ["route", "show", "default"]);
        assert.equal(r.stdout.trim(), "", `${h.role} has a default route`);
      }
      const out = await lab.exec("source", "curl", ["--connect-timeout", "2", "-sS", "https://192.0.2.1/"]);
      assert.match(out.stderr, /unreachable|Couldn't connect/i, out.stderr);
      // Everything not opened by a rule is dropped: the service host has no path to the data plane.
      const dropped = await lab.exec("service", "curl", [
        "--connect-timeout",
        "1",
        "-sS",
        "-k",
        `https://${rep.privateAddress}/`,
      ]);
      assert.equal(dropped.code, 28, `service → replicator 1500 was not dropped: ${dropped.stderr}`);

      // The source's disk: a loop device with data, zeros and data.
      const disk = await lab.addSourceDisk(16 * MiB);
      device = disk.device;
      const fh = await open(device, "r+");
      await fh.write(randomBytes(6 * MiB), 0, 6 * MiB, 0);
      await fh.write(randomBytes(6 * MiB), 0, 6 * MiB, 10 * MiB);
      await fh.sync();
      await fh.close();

      // F1: the installer from the bucket's virtual host, through the object-store endpoint.
      const installer = join(lab.dir, "source", "ferry-installer-init");
      const dl = await lab.exec("source", "curl", [
        "--fail",
        "--silent",
        "--show-error",
        "--cacert",
        lab.endpoints.objectStore.caFile,
        "--output",
        installer,
        lab.endpoints.objectStore.installerUrl,
      ]);
      assert.equal(dl.code, 0, dl.stderr);
      assert.ok(lab.endpoints.objectStore.installerUrl.startsWith(`https://${names.bucketHost}/`));
      assert.equal(
        await readFile(installer, "utf8"),
        await readFile(join(ROOT, "installer", "ferry-installer-init"), "utf8"),
      );

      // F2: install and register through the service endpoint, the CA pinned by fingerprint.
      const installDir = join(lab.dir, "source", "opt");
      const inst = await lab.exec(
        "source",
        "dash",
        [installer, ...lab.installerArgs({ devices: [device], installDir })],
        {
          env: lab.sourceEnv(),
          timeoutMs: 90_000,
        },
      );
      assert.equal(inst.code, 0, `installer failed:\n${inst.stderr}`);
      assert.ok(inst.stderr.includes(`https://${names.bucketHost}/latest/linux/`), inst.stderr);
      phase("installed and registered");
      const id = /Source server ID: (s-[0-9a-zA-Z]{17})/.exec(inst.stdout)?.[1];
      assert.ok(id, inst.stdout);
      const config = await lab.mgn<{ dataPlaneRouting: string }>("GetReplicationConfiguration", {
        sourceServerID: id,
      });
      assert.equal(config.dataPlaneRouting, "PRIVATE_IP");

      // F7: the agent replicates to the replicator's private address.
      const before1500 = await acceptedBy(lab, "replicator1", "F7");
      await lab.spawn(
        "source",
        "agent",
        join(installDir, "bin", "ferry"),
        ["agent", "run", "--state-dir", join(installDir, "state"), "--tracker", "scan"],
        lab.sourceEnv(),
      );
      const server = await until(
        "CONTINUOUS in DescribeSourceServers (asked from the source)",
        90_000,
        async () => {
          const r = await lab.mgn<{ items?: SourceServer[] }>(
            "DescribeSourceServers",
            { filters: { sourceServerIDs: [id] } },
            { from: "source" },
          );
          const s = r.items?.[0];
          return s?.dataReplicationInfo?.dataReplicationState === "CONTINUOUS" ? s : undefined;
        },
      ).catch(async (err: unknown) => {
        throw new Error(
          `${(err as Error).message}\nagent log:\n${await logTail(lab, "agent")}\nreplicator log:\n${await logTail(lab, "replicator1")}`,
        );
      });
      phase("CONTINUOUS");
      const replicated = server.dataReplicationInfo?.replicatedDisks ?? [];
      assert.deepEqual(
        replicated.map((d) => [d.deviceName, d.totalStorageBytes, d.replicatedStorageBytes]),
        [[device, 16 * MiB, 16 * MiB]],
      );
      assert.ok(
        (await acceptedBy(lab, "replicator1", "F7")) > before1500,
        "no packet from the source reached the replicator's 1500 rule",
      );

      // The replica, block for block, against the source's loop device.
      const diskId = device.split("/").pop()!;
      const verify = JSON.parse(
        execFileSync(
          FERRY,
          [
            "replicator",
            "verify",
            "--data-dir",
            rep.dataDir,
            "--source-server-id",
            id,
            "--disk-id",
            diskId,
            "--source",
            device,
            "--json",
          ],
          { encoding: "utf8", timeout: 60_000 },
        ),
      ) as { ok: boolean; differentBlocks: number | null; damagedBlocks: number; diskSize: number };
      assert.equal(verify.diskSize, 16 * MiB);
      assert.equal(verify.damagedBlocks, 0);
      assert.equal(verify.differentBlocks, 0);
      assert.equal(verify.ok, true);

      phase("replica verified");
      // Without the service's hosts line, --resolve alone carries the installer and the agent.
      await lab.removeServiceHostsLine();
      const noName = await lab.exec("source", "getent", ["hosts", names.service]);
      assert.notEqual(noName.code, 0, "the service name still resolves on the source");
      const again = await lab.exec(
        "source",
        "dash",
        [
          installer,
          ...lab.installerArgs({
            devices: [device],
            installDir: join(lab.dir, "source", "opt-b"),
            resolve: true,
          }),
        ],
        { env: lab.sourceEnv(), timeoutMs: 90_000 },
      );
      assert.equal(again.code, 0, `installer with --resolve failed:\n${again.stderr}`);
      assert.ok(again.stdout.includes(`Source server ID: ${id}`), again.stdout);
      phase("registered again with --resolve");
    } finally {
      const report = await lab.close();
      phase("torn down");
      assert.deepEqual(report.errors, []);
      const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      for (const ns of namespaces) assert.ok(!left.includes(ns), `namespace ${ns} left behind`);
      for (const ns of namespaces)
        assert.ok(!existsSync(join("/etc/netns", ns)), `/etc/netns/${ns} left behind`);
      assert.ok(!existsSync(lab.dir), `${lab.dir} left behind`);
      if (device) {
        const loops = execFileSync("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"], {
          encoding: "utf8",
        });
        assert.ok(!loops.includes(lab.dir), `a loop device of the lab is still attached:\n${loops}`);
      }
      // A second teardown finds nothing to do.
      assert.deepEqual((await lab.close()).errors, []);
    }
  },
);
