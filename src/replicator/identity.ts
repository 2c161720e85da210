/**
 * The replicator's identity on disk: its TLS certificate (created on first
 * start, self-signed, pinned by agents through its fingerprint) and the
 * pairing token agents present.
 */
import { X509Certificate, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { systemErrorCode } from "../lib/errors.ts";

export interface ReplicatorIdentity {
  certPem: string;
  keyPem: string;
  fingerprint: string;
  token: string;
  /** True when the certificate or token was created by this call. */
  created: boolean;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

export async function loadOrCreateIdentity(
  dataDir: string,
  options: { altNames?: string[]; token?: string; certFile?: string; keyFile?: string } = {},
): Promise<ReplicatorIdentity> {
  const dir = join(dataDir, "tls");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let created = false;
  let certPem = options.certFile
    ? await readFile(options.certFile, "utf8")
    : await readOptional(join(dir, "replicator.crt"));
  let keyPem = options.keyFile
    ? await readFile(options.keyFile, "utf8")
    : await readOptional(join(dir, "replicator.key"));
  if (!certPem || !keyPem) {
    const names = [...new Set(["localhost", "127.0.0.1", ...(options.altNames ?? [])])];
    // Only here: the X.509 builder costs a running replicator about 18 MiB.
    const { createSelfSigned } = await import("../lib/pki.ts");
    const kc = await createSelfSigned({ commonName: "ferry-replicator", altNames: names, days: 3650 });
    certPem = kc.certPem;
    keyPem = kc.keyPem;
    await writeFile(join(dir, "replicator.key"), keyPem, { mode: 0o600 });
    await writeFile(join(dir, "replicator.crt"), certPem, { mode: 0o644 });
    created = true;
  }
  let token = options.token ?? (await readOptional(join(dataDir, "token")))?.trim();
  if (!token) {
    token = randomBytes(24).toString("base64url");
    await writeFile(join(dataDir, "token"), `${token}\n`, { mode: 0o600 });
    created = true;
  }
  // As fingerprintOf (lib/pki.ts) computes it, without loading the X.509 builder.
  const fingerprint = new X509Certificate(certPem).fingerprint256;
  return { certPem, keyPem, fingerprint, token, created };
}
