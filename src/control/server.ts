/**
 * `startServer`: the control plane over HTTPS (TLS 1.2+, 1.3 preferred by
 * Node). On first start it creates a CA and a server certificate in
 * `<dataDir>/tls/`, reissuing the server certificate when the requested names
 * change; or it uses the files it is given.
 */
import { createServer } from "node:https";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { createCa, fingerprintOf, issueCertificate } from "../lib/pki.ts";
import { FerryError } from "../lib/errors.ts";
import type { ControlPlaneOptions } from "./options.ts";
import type { ControlPlane } from "./control-plane.ts";
import { createControlPlane } from "./control-plane.ts";
import { writeLivenessSettings } from "./store/settings.ts";

export interface ServerOptions extends ControlPlaneOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 8443 */
  port?: number;
  /** Names and IPs in the generated server certificate. @default ["localhost", "127.0.0.1", os.hostname()] */
  certNames?: string[];
  /** Use these PEM files instead of generating: the server certificate, its key, and the CA to publish. */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

export interface ServerHandle {
  /** `https://host:port` as clients should use it. */
  url: string;
  port: number;
  caFile: string;
  /** SHA-256 fingerprint of the CA certificate (for pinning and for operators to compare). */
  caFingerprint: string;
  certNames: string[];
  controlPlane: ControlPlane;
  close(): Promise<void>;
}

async function ensureTls(
  dataDir: string,
  names: string[],
): Promise<{ cert: string; key: string; caFile: string }> {
  const dir = join(dataDir, "tls");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca-key.pem");
  if (!existsSync(caFile) || !existsSync(caKey)) {
    const ca = await createCa("Ferry control plane CA");
    writeFileSync(caKey, ca.keyPem, { mode: 0o600 });
    writeFileSync(caFile, ca.certPem);
  }
  const certFile = join(dir, "server.pem");
  const keyFile = join(dir, "server-key.pem");
  const namesFile = join(dir, "server-names.json");
  const wanted = JSON.stringify([...names].sort());
  if (
    !existsSync(certFile) ||
    !existsSync(keyFile) ||
    !existsSync(namesFile) ||
    readFileSync(namesFile, "utf8") !== wanted
  ) {
    const ca = {
      certPem: readFileSync(caFile, "utf8"),
      keyPem: readFileSync(caKey, "utf8"),
      fingerprint: "",
    };
    const leaf = await issueCertificate(ca, {
      commonName: names[0] ?? "localhost",
      altNames: names,
      usages: ["server"],
    });
    writeFileSync(keyFile, leaf.keyPem, { mode: 0o600 });
    writeFileSync(certFile, `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
    writeFileSync(namesFile, wanted);
  }
  return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8"), caFile };
}

export async function startServer(options: ServerOptions): Promise<ServerHandle> {
  const host = options.host ?? "127.0.0.1";
  const certNames = options.certNames ?? [...new Set(["localhost", "127.0.0.1", hostname()])];
  const tls = options.tls
    ? {
        cert: readFileSync(options.tls.certFile, "utf8"),
        key: readFileSync(options.tls.keyFile, "utf8"),
        caFile: options.tls.caFile,
      }
    : await ensureTls(options.dataDir, certNames);
  const controlPlane = await createControlPlane(options);
  // For the CLI readers of the same database (source-server list|describe, doctor --server).
  const o = controlPlane.options;
  const liveness = {
    agentNotSeenAfterSeconds: o.agentNotSeenAfterSeconds,
    replicatorNotSeenAfterSeconds: o.replicatorNotSeenAfterSeconds,
  };
  await writeLivenessSettings(controlPlane.store, liveness, o.now()).catch(async (err: unknown) => {
    await controlPlane.close();
    throw err;
  });
  const server = createAdaptorServer({
    fetch: controlPlane.app.fetch,
    createServer,
    serverOptions: { cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 8443, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await controlPlane.close();
    throw new FerryError(
      "LISTEN_FAILED",
      `Could not listen on ${host}:${options.port ?? 8443}: ${(err as Error).message}. Choose another --listen address.`,
      { cause: err },
    );
  }
  const port = (server.address() as AddressInfo).port;
  const urlHost =
    host === "0.0.0.0" || host === "::"
      ? (certNames[0] ?? "localhost")
      : host.includes(":")
        ? `[${host}]`
        : host;
  return {
    url: `https://${urlHost}:${port}`,
    port,
    caFile: tls.caFile,
    caFingerprint: fingerprintOf(readFileSync(tls.caFile)),
    certNames,
    controlPlane,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await controlPlane.close();
    },
  };
}
