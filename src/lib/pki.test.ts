import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import {
  createCa,
  createCsr,
  createSelfSigned,
  fingerprintOf,
  issueCertificate,
  normalizeFingerprint,
  signCsr,
} from "./pki.ts";

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

test("a CSR is signed into a client certificate with the CA's chosen name; a damaged CSR is refused", async () => {
  const ca = await createCa("CA");
  const { csrPem, keyPem } = await createCsr("whatever-the-requester-says");
  const issued = await signCsr(ca, csrPem, { commonName: "source-server:s-x", usages: ["client"] });
  const cert = new X509Certificate(issued.certPem);
  assert.match(cert.subject, /CN=source-server:s-x/);
  assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  // The certificate's key is the requester's.
  assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
  const lines = csrPem.trim().split("\n");
  const mid = Math.floor(lines.length / 2);
  lines[mid] = lines[mid]!.slice(0, 10) + (lines[mid]![10] === "A" ? "B" : "A") + lines[mid]!.slice(11);
  await assert.rejects(signCsr(ca, lines.join("\n"), { commonName: "x" }), RangeError);
});
