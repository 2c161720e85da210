import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createTcpServer, type Server } from "node:net";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createCa, issueCertificate, type KeyAndCert } from "../../lib/pki.ts";
import { chainHasPin, httpsGet, isPrivateAddress, resolveName, tcpConnect, tlsInspect } from "./probes.ts";

let ca: KeyAndCert;
let leaf: KeyAndCert;
let https: HttpsServer;
let httpsPort = 0;
let closedPort = 0;

before(async () => {
  ca = await createCa("doctor test CA");
  leaf = await issueCertificate(ca, { commonName: "mgn.test", altNames: ["mgn.test", "127.0.0.1"] });
  https = createHttpsServer(
    { cert: `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`, key: leaf.keyPem },
    (_req, res) => {
      res.end("ok");
    },
  );
  await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
  httpsPort = (https.address() as AddressInfo).port;
  // A port that nothing listens on: bind, note it, close.
  const s: Server = createTcpServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  closedPort = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
});

after(() => {
  https.closeAllConnections();
  https.close();
});

test("tcpConnect: a listener connects, a closed port is refused", async () => {
  const ok = await tcpConnect("127.0.0.1", httpsPort, 2000);
  assert.equal(ok.ok, true);
  assert.equal(ok.ok && ok.localAddress, "127.0.0.1");
  const refused = await tcpConnect("127.0.0.1", closedPort, 2000);
  assert.deepEqual(refused.ok ? "connected" : refused.error, "ECONNREFUSED");
});

test("resolveName: --resolve pairs first, literals as they are, unknown names fail with ENOTFOUND", async () => {
  const pinned = await resolveName("MGN.test", new Map([["mgn.test", "10.20.0.10"]]));
  assert.deepEqual(pinned, { ok: true, addresses: ["10.20.0.10"], via: "--resolve" });
  assert.deepEqual(await resolveName("10.1.2.3"), { ok: true, addresses: ["10.1.2.3"], via: "literal" });
  const missing = await resolveName("no-such-name.invalid");
  assert.equal(missing.ok, false);
  assert.match(missing.ok ? "" : missing.error, /ENOTFOUND|EAI_AGAIN/);
});

test("isPrivateAddress", () => {
  for (const ip of ["10.0.0.1", "172.16.5.5", "192.168.1.1", "127.0.0.1", "100.64.0.1", "fd00::1", "::1"])
    assert.equal(isPrivateAddress(ip), true, ip);
  for (const ip of ["8.8.8.8", "172.32.0.1", "198.51.100.30", "2001:db8::1"])
    assert.equal(isPrivateAddress(ip), false, ip);
});

test("tlsInspect: the chain, trust by the CA, the name check, and the pin", async () => {
  const base = { address: "127.0.0.1", port: httpsPort, timeoutMs: 3000 };
  const trusted = await tlsInspect({ ...base, name: "mgn.test", caPem: ca.certPem });
  assert.ok(trusted.ok);
  assert.equal(trusted.authorized, true);
  assert.deepEqual(trusted.chain, [leaf.fingerprint, ca.fingerprint]);
  assert.equal(chainHasPin(trusted.chain, ca.fingerprint.toLowerCase().replace(/:/g, "")), true);
  assert.equal(chainHasPin(trusted.chain, (await createCa("another")).fingerprint), false);

  const untrusted = await tlsInspect({ ...base, name: "mgn.test" });
  assert.ok(untrusted.ok);
  assert.equal(untrusted.authorized, false);
  assert.match(untrusted.authorizationError ?? "", /SELF_SIGNED|UNABLE_TO_GET_ISSUER|CERT/);

  const wrongName = await tlsInspect({ ...base, name: "other.test", caPem: ca.certPem });
  assert.ok(wrongName.ok);
  assert.equal(wrongName.authorizationError, "ERR_TLS_CERT_ALTNAME_INVALID");

  const notTls = await tlsInspect({ ...base, port: closedPort, name: "mgn.test" });
  assert.deepEqual(notTls, { ok: false, error: "ECONNREFUSED" });
});

test("httpsGet: status and Date through a fixed address, the name kept for TLS", async () => {
  const r = await httpsGet({
    url: new URL(`https://mgn.test:${httpsPort}/healthz`),
    address: "127.0.0.1",
    caPem: ca.certPem,
    timeoutMs: 3000,
  });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.status, 200);
  assert.ok(Math.abs(Date.parse(r.date ?? "") - Date.now()) < 5000);
});
