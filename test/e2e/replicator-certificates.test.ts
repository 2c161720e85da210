/**
 * Per-server credentials on the data plane: the replicator accepts only
 * client certificates from the control plane's CA, and only for the source
 * server they were issued to.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { replicateDisk } from "../../src/agent/sync.ts";
import { FerryError } from "../../src/lib/errors.ts";
import { createCa, issueCertificate, type KeyAndCert } from "../../src/lib/pki.ts";
import { certificateAuthorizer, sourceServerCommonName } from "../../src/replicator/server.ts";
import { createScratch, type Scratch } from "../support/loop.ts";
import { sha256File, stagingImage, startTestReplicator, type TestReplicator } from "../support/data-plane.ts";

const A = "s-aaaaaaaaaaaaaaaaa";
const B = "s-bbbbbbbbbbbbbbbbb";

describe("replicator client certificates", () => {
  let scratch: Scratch;
  let rep: TestReplicator;
  let ca: KeyAndCert;
  let certA: KeyAndCert;
  let disk: string;
  before(async () => {
    scratch = await createScratch();
    ca = await createCa("Ferry control plane CA (test)");
    certA = await issueCertificate(ca, { commonName: sourceServerCommonName(A), usages: ["client"] });
    rep = await startTestReplicator(join(scratch.dir, "rep"), {
      clientCa: ca.certPem,
      authorize: certificateAuthorizer(),
    });
    disk = join(scratch.dir, "d.img");
    await writeFile(disk, randomBytes(2 * 1024 * 1024));
  });
  after(async () => {
    await rep.replicator.close();
    await scratch.cleanup();
  });

  const sync = (sourceServerId: string, clientCertificate?: { certPem: string; keyPem: string }) =>
    replicateDisk({
      sourcePath: disk,
      sourceServerId,
      diskId: "d0",
      endpoint: { ...rep.endpoint, token: "", ...(clientCertificate ? { clientCertificate } : {}) },
      stateDir: join(scratch.dir, `state-${sourceServerId}`),
      maxReconnects: 0,
    });

  test("an agent with its own server's certificate replicates", async () => {
    await sync(A, certA);
    assert.equal(await sha256File(await stagingImage(rep.dataDir, A, "d0")), await sha256File(disk));
  });

  test("agent A's certificate used for server B's disks is refused", async () => {
    await assert.rejects(
      sync(B, certA),
      (e: unknown) => e instanceof FerryError && e.code === "AUTH_FAILED" && e.message.includes(B),
    );
  });

  test("a certificate from another CA, or none, never gets past TLS", async () => {
    const other = await createCa("someone else");
    const forged = await issueCertificate(other, {
      commonName: sourceServerCommonName(A),
      usages: ["client"],
    });
    for (const attempt of [() => sync(A, forged), () => sync(A)]) {
      await assert.rejects(
        attempt(),
        (e: unknown) => e instanceof FerryError && /certificate/.test(e.message),
      );
    }
  });
});
