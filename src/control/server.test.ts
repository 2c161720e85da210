import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { startServer } from "./server.ts";
import { silentLogger } from "../lib/log.ts";

function tlsHandshake(
  port: number,
  ca: Buffer,
  opts: { servername?: string; maxVersion?: "TLSv1.1" | "TLSv1.3" } = {},
) {
  return new Promise<{ protocol: string | null; cert: X509Certificate }>((resolve, reject) => {
    const s = connect(
      {
        host: "127.0.0.1",
        port,
        ca,
        servername: opts.servername ?? "localhost",
        ...(opts.maxVersion ? { maxVersion: opts.maxVersion, minVersion: "TLSv1" } : {}),
      },
      () => {
        const out = { protocol: s.getProtocol(), cert: new X509Certificate(s.getPeerX509Certificate()!.raw) };
        s.end();
        resolve(out);
      },
    );
    s.on("error", reject);
  });
}

test("ferry server: generated CA and certificate with the requested names, TLS 1.2+, reissued when the names change", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-server-"));
  try {
    let s = await startServer({
      dataDir: dir,
      port: 0,
      logger: silentLogger,
      certNames: ["ferry.test", "127.0.0.1"],
    });
    let fingerprint: string;
    try {
      const ca = readFileSync(s.caFile);
      fingerprint = s.caFingerprint;
      assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.equal(new X509Certificate(ca).fingerprint256, fingerprint);
      const hs = await tlsHandshake(s.port, ca, { servername: "ferry.test" });
      assert.equal(hs.protocol, "TLSv1.3");
      assert.match(hs.cert.subjectAltName ?? "", /DNS:ferry\.test/);
      assert.match(hs.cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
      assert.ok(hs.cert.checkIssued(new X509Certificate(ca)), "issued by the published CA");
      await assert.rejects(tlsHandshake(s.port, ca, { maxVersion: "TLSv1.1" }), "TLS 1.1 refused");
      const health = await fetch(`http://127.0.0.1:${s.port}/healthz`).catch((e: unknown) => e);
      assert.ok(health instanceof Error, "no plaintext HTTP");
    } finally {
      await s.close();
    }
    s = await startServer({ dataDir: dir, port: 0, logger: silentLogger, certNames: ["ferry2.test"] });
    try {
      assert.equal(s.caFingerprint, fingerprint, "same CA across restarts");
      const hs = await tlsHandshake(s.port, readFileSync(s.caFile), { servername: "ferry2.test" });
      assert.match(hs.cert.subjectAltName ?? "", /DNS:ferry2\.test/);
      assert.doesNotMatch(hs.cert.subjectAltName ?? "", /ferry\.test/);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ferry server refuses a port in use with a clear error", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-server-"));
  const a = await startServer({ dataDir: dir, port: 0, logger: silentLogger, certNames: ["127.0.0.1"] });
  try {
    await assert.rejects(
      startServer({ dataDir: join(dir, "b"), port: a.port, logger: silentLogger, certNames: ["127.0.0.1"] }),
      /Could not listen on 127\.0\.0\.1:\d+/,
    );
  } finally {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
