/**
 * The data-plane CA: it signs each source server's client certificate (from
 * the agent's CSR at registration, CN `source-server:<id>`), and replicators
 * trust only certificates it signed. Kept in `<dataDir>/tls/` (created on
 * first start); several servers sharing one database must share these files,
 * as they share the master key.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type KeyAndCert, createCa, fingerprintOf } from "../../lib/pki.ts";

export async function loadOrCreateDataPlaneCa(dataDir: string): Promise<KeyAndCert> {
  const dir = join(dataDir, "tls");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, "data-plane-ca.pem");
  const keyFile = join(dir, "data-plane-ca-key.pem");
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const ca = await createCa("Ferry data-plane CA");
    writeFileSync(keyFile, ca.keyPem, { mode: 0o600 });
    writeFileSync(certFile, ca.certPem);
  }
  const certPem = readFileSync(certFile, "utf8");
  return { certPem, keyPem: readFileSync(keyFile, "utf8"), fingerprint: fingerprintOf(certPem) };
}
