/**
 * Certificates for Ferry's two planes: a CA, server certificates with SANs,
 * client certificates, and SHA-256 fingerprints for pinning. ECDSA P-256 keys,
 * generated with WebCrypto; X.509 built with @peculiar/x509.
 */
import "reflect-metadata"; // @peculiar/x509 resolves its services through tsyringe, which needs it
import { X509Certificate, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate's DER, uppercase hex with colons (as `openssl x509 -fingerprint -sha256`). */
  fingerprint: string;
}

export interface CertificateRequest {
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for. */
  altNames?: string[];
  /** @default 825 */
  days?: number;
  /** Extended key usages. @default ["server"] */
  usages?: ("server" | "client")[];
}

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0]! &= 0x7f; // positive
  return Buffer.from(b).toString("hex");
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  // Back-date a little so a peer with a slightly slow clock accepts the certificate.
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86400_000) };
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function importKey(keyPem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(keyPem)[0];
  if (!der) throw new Error("no PEM private key found");
  return webcrypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]) as Promise<CryptoKey>;
}

function sanExtension(altNames: string[]): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension(
    altNames.map((n) => (isIP(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n })),
  );
}

/** A new certificate authority (self-signed, may sign certificates). */
export async function createCa(commonName: string, days = 3650): Promise<KeyAndCert> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    ...validity(days),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString("pem");
  return { certPem, keyPem: await exportKey(keys.privateKey), fingerprint: fingerprintOf(certPem) };
}

/** A leaf certificate for a server or client, signed by `ca`. */
export async function issueCertificate(ca: KeyAndCert, req: CertificateRequest): Promise<KeyAndCert> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  return { ...(await signPublicKey(ca, keys.publicKey, req)), keyPem: await exportKey(keys.privateKey) };
}

/** Signs a public key (e.g. from a CSR) into a certificate; the key stays with its owner. */
export async function signPublicKey(
  ca: KeyAndCert,
  publicKey: CryptoKey,
  req: CertificateRequest,
): Promise<{ certPem: string; fingerprint: string }> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const usages = req.usages ?? ["server"];
  const eku = usages.map((u) =>
    u === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.commonName}`,
    issuer: caCert.subject,
    ...validity(req.days ?? 825),
    publicKey,
    signingKey: await importKey(ca.keyPem),
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(req.altNames?.length ? [sanExtension(req.altNames)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  const certPem = cert.toString("pem");
  return { certPem, fingerprint: fingerprintOf(certPem) };
}

/** A self-signed server certificate (used where a fingerprint is pinned instead of a CA). */
export async function createSelfSigned(req: CertificateRequest): Promise<KeyAndCert> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const usages = req.usages ?? ["server"];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${req.commonName}`,
    ...validity(req.days ?? 825),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension(
        usages.map((u) =>
          u === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ),
        false,
      ),
      ...(req.altNames?.length ? [sanExtension(req.altNames)] : []),
    ],
  });
  const certPem = cert.toString("pem");
  return { certPem, keyPem: await exportKey(keys.privateKey), fingerprint: fingerprintOf(certPem) };
}

/** SHA-256 fingerprint of a PEM or DER certificate, as `AA:BB:…`. */
export function fingerprintOf(cert: string | Buffer): string {
  return new X509Certificate(cert).fingerprint256;
}

/** Normalises a fingerprint given by a person: any case, with or without colons, optional `sha256:` prefix. */
export function normalizeFingerprint(text: string): string {
  const hex = text
    .trim()
    .replace(/^sha256:/i, "")
    .replace(/[:\s]/g, "")
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new RangeError(`not a SHA-256 fingerprint: "${text}" (expected 64 hex digits, colons optional)`);
  }
  return hex.match(/../g)!.join(":");
}

/** A key pair and a PKCS#10 request for it (the private key never leaves its owner). */
export async function createCsr(commonName: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: ALG,
  });
  return { csrPem: csr.toString("pem"), keyPem: await exportKey(keys.privateKey) };
}

/**
 * Issues a certificate for the key in a PKCS#10 request, after checking the
 * request's self-signature. The subject is the caller's choice (`req`), not
 * the request's: the requester proves it holds the key, the CA decides the name.
 */
export async function signCsr(
  ca: KeyAndCert,
  csrPem: string,
  req: CertificateRequest,
): Promise<{ certPem: string; fingerprint: string }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new RangeError(`not a PKCS#10 certificate request: ${(err as Error).message}`, { cause: err });
  }
  let publicKey: CryptoKey;
  try {
    if (!(await csr.verify())) throw new Error("its signature does not verify");
    publicKey = (await csr.publicKey.export(ALG, ["verify"])) as CryptoKey;
  } catch (err) {
    throw new RangeError(`the certificate request is not valid: ${(err as Error).message}`, { cause: err });
  }
  return signPublicKey(ca, publicKey, req);
}
