/**
 * The lab's knobs (test/support/lab.ts), which the doctor's tests turn: each
 * breaks exactly its path, observed from the source the way an agent would
 * meet it (a dropped packet times out, a missing name does not resolve, an
 * address nothing routes is unreachable, a wrong CA is refused, a skewed
 * server refuses signatures), and its inverse restores it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLab, labUnavailable, type Lab } from "../support/lab.ts";

const FERRY = join(import.meta.dirname, "..", "..", "bin", "ferry");

/** curl's exit code for an HTTPS request from a host: 0 answered, 6 no such name, 7 unreachable/refused, 28 timed out, 35 TLS failed after connecting. */
async function probe(lab: Lab, from: Parameters<Lab["exec"]>[0], url: string): Promise<number> {
  const r = await lab.exec(
    from,
    "curl",
    ["--silent", "--insecure", "--connect-timeout", "1", "--max-time", "15", "--output", "/dev/null", url],
    {
      timeoutMs: 20_000,
    },
  );
  return r.code;
}

test(
  "each knob breaks its path and its inverse restores it",
  { skip: labUnavailable(), timeout: 170_000 },
  async () => {
    const lab = await createLab();
    try {
      const n = lab.plan.names;
      const rep = lab.endpoints.replicators[0]!;
      const dataPlane = `https://${rep.privateAddress}/`;
      const service = `https://${n.service}/`;
      const bucket = `https://${n.bucketHost}/`;
      // Reached: the replicator closes the TLS handshake of a client without a certificate.
      assert.equal(await probe(lab, "source", dataPlane), 35);
      assert.equal(await probe(lab, "source", service), 0);
      assert.equal(await probe(lab, "source", bucket), 0);

      await lab.blockDataPlane();
      assert.equal(await probe(lab, "source", dataPlane), 28, "1500 is still open");
      assert.equal(await probe(lab, "source", service), 0, "blocking 1500 closed 443");
      assert.ok(lab.state.knobs["data-plane-rule"]);
      await lab.allowDataPlane();
      assert.equal(await probe(lab, "source", dataPlane), 35);
      assert.equal(lab.state.knobs["data-plane-rule"], undefined);

      await lab.blockObjectStore();
      assert.equal(await probe(lab, "source", bucket), 28, "443 to the object store is still open");
      assert.equal(
        await probe(lab, rep.role as "replicator1", bucket),
        0,
        "the replicators lost the object store too",
      );
      await lab.allowObjectStore();
      assert.equal(await probe(lab, "source", bucket), 0);

      await lab.removeServiceHostsLine();
      assert.equal(await probe(lab, "source", service), 6, "the service name still resolves on the source");
      assert.equal(await probe(lab, "source", bucket), 0, "the object store's names went too");
      assert.equal(
        await probe(lab, rep.role as "replicator1", service),
        0,
        "the replicator lost the name too",
      );
      await lab.restoreServiceHostsLine();
      assert.equal(await probe(lab, "source", service), 0);

      await lab.removeReturnRoute();
      assert.equal(await probe(lab, "source", service), 28, "replies still find their way back");
      assert.equal(await probe(lab, "source", dataPlane), 28);
      await lab.restoreReturnRoute();
      assert.equal(await probe(lab, "source", service), 0);
      assert.equal(await probe(lab, "source", dataPlane), 35);

      // PUBLIC_IP: the address agents would be sent to exists nowhere.
      assert.equal(await probe(lab, "source", `https://${rep.publicAddress}/`), 7);
      type Templates = { items?: { dataPlaneRouting?: string }[] };
      await lab.setDataPlaneRouting("PUBLIC_IP");
      const pub = await lab.mgn<Templates>("DescribeReplicationConfigurationTemplates", {});
      assert.deepEqual(
        pub.items?.map((t) => t.dataPlaneRouting),
        ["PUBLIC_IP"],
      );
      await lab.setDataPlaneRouting("PRIVATE_IP");
      const priv = await lab.mgn<Templates>("DescribeReplicationConfigurationTemplates", {});
      assert.deepEqual(
        priv.items?.map((t) => t.dataPlaneRouting),
        ["PRIVATE_IP"],
      );

      // A wrong CA fingerprint: registration is refused before anything is sent.
      const image = join(lab.dir, "source", "tiny.img");
      await writeFile(image, Buffer.alloc(1024 * 1024));
      const install = (fingerprint: string) =>
        lab.exec(
          "source",
          FERRY,
          [
            "agent",
            "install",
            "--endpoint",
            lab.endpoints.controlPlane.endpoint,
            "--region",
            n.region,
            "--ca-fingerprint",
            fingerprint,
            "--no-prompt",
            "--devices",
            image,
            "--state-dir",
            join(lab.dir, "source", "state-knobs"),
            "--no-systemd",
            "--json",
          ],
          {
            env: {
              ...lab.sourceEnv(),
              AWS_ACCESS_KEY_ID: lab.endpoints.keys.install.accessKeyId,
              AWS_SECRET_ACCESS_KEY: lab.endpoints.keys.install.secretAccessKey,
            },
            timeoutMs: 60_000,
          },
        );
      const wrong = await lab.useWrongCaFingerprint();
      assert.notEqual(wrong, lab.endpoints.controlPlane.caFingerprint);
      assert.equal(lab.agentCaFingerprint, wrong);
      assert.ok(lab.installerArgs({ devices: [image], installDir: "/x" }).includes(wrong));
      const refused = await install(lab.agentCaFingerprint);
      assert.notEqual(refused.code, 0, refused.stdout);
      assert.match(refused.stdout + refused.stderr, /fingerprint/i);
      await lab.useRightCaFingerprint();
      assert.equal(lab.agentCaFingerprint, lab.endpoints.controlPlane.caFingerprint);
      const accepted = await install(lab.agentCaFingerprint);
      assert.equal(accepted.code, 0, accepted.stderr);

      // A server 15 minutes ahead refuses every signature; its store still answers.
      await lab.skewServerClock(900);
      await assert.rejects(lab.mgn("DescribeSourceServers", {}), /Signature expired/);
      assert.equal((await lab.sourceServers()).length, 1);
      await lab.restoreServerClock();
      const after = await lab.mgn<{ items?: unknown[] }>("DescribeSourceServers", {});
      assert.equal(after.items?.length, 1);
      assert.deepEqual(lab.state.knobs, {});
    } finally {
      assert.deepEqual((await lab.close()).errors, []);
    }
  },
);
