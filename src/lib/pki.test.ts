import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { createCa, createSelfSigned, fingerprintOf, issueCertificate, normalizeFingerprint } from "./pki.ts";

test("a CA issues server certificates that verify against it, with the SANs asked for", async () => {
  const ca = await createCa("Ferry test CA");
  const leaf = await issueCertificate(ca, {
    commonName: "replicator",
    altNames: ["127.0.0.1", "rep.example"],
  });
  const caCert = new X509Certificate(ca.certPem);
  const cert = new X509Certificate(leaf.certPem);
  assert.ok(caCert.ca);
  assert.ok(cert.verify(caCert.publicKey));
  assert.ok(cert.checkIP("127.0.0.1"));
  assert.equal(cert.checkHost("rep.example"), "rep.example");
  assert.equal(cert.checkHost("other.example"), undefined);
  assert.equal(leaf.fingerprint, cert.fingerprint256);
  const other = await createCa("another CA");
  assert.ok(!cert.verify(new X509Certificate(other.certPem).publicKey));
});

test("self-signed certificates and fingerprint normalisation", async () => {
  const s = await createSelfSigned({ commonName: "x", altNames: ["localhost"] });
  assert.equal(fingerprintOf(s.certPem), s.fingerprint);
  const bare = s.fingerprint.replace(/:/g, "").toLowerCase();
  assert.equal(normalizeFingerprint(bare), s.fingerprint);
  assert.equal(normalizeFingerprint(`sha256:${s.fingerprint}`), s.fingerprint);
  assert.throws(() => normalizeFingerprint("abc"), RangeError);
});
