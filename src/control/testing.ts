/**
 * Test support: a control plane in a temp dir with an operator key, and a
 * client that signs requests with AWS's own SigV4 signer (@smithy/signature-v4,
 * the one inside @aws-sdk/client-mgn) and calls the app in process.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import type { ControlPlane } from "./control-plane.ts";
import { createControlPlane } from "./control-plane.ts";
import type { ControlPlaneOptions } from "./options.ts";
import { silentLogger } from "../lib/log.ts";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export interface TestPlane {
  cp: ControlPlane;
  operator: Credentials;
  clock: { now: number };
  /** Signs (as `creds`, default the operator) and sends `POST path` with a JSON body. */
  call(
    path: string,
    body?: unknown,
    opts?: {
      creds?: Credentials;
      method?: string;
      query?: Record<string, string[]>;
      signingDate?: Date;
      region?: string;
      tamper?: (init: { headers: Record<string, string>; body: string }) => void;
    },
  ): Promise<TestResponse>;
  close(): Promise<void>;
}

export async function signedFetchInit(
  creds: Credentials,
  region: string,
  method: string,
  path: string,
  query: Record<string, string[]> | undefined,
  body: string,
  signingDate: Date,
): Promise<{ headers: Record<string, string>; body: string }> {
  const signer = new SignatureV4({ credentials: creds, region, service: "mgn", sha256: Sha256 });
  const signed = await signer.sign(
    {
      method,
      protocol: "https:",
      hostname: "mgn.ferry.test",
      path,
      query: query ?? {},
      headers: { host: "mgn.ferry.test", "content-type": "application/json" },
      body,
    },
    { signingDate },
  );
  return { headers: signed.headers as Record<string, string>, body };
}

export async function createTestPlane(options: Partial<ControlPlaneOptions> = {}): Promise<TestPlane> {
  // A directory of its own unless the caller brings one; removed also when the plane does not start.
  const dir = options.dataDir ? undefined : mkdtempSync(join(tmpdir(), "ferry-control-"));
  const clock = { now: Date.now() };
  let cp: Awaited<ReturnType<typeof createControlPlane>>;
  try {
    cp = await createControlPlane({
      dataDir: dir ?? options.dataDir!,
      logger: silentLogger,
      now: () => clock.now,
      ...options,
    });
  } catch (err) {
    if (dir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const operator = await cp.accessKeys.create("operator", "test operator");
  return {
    cp,
    operator,
    clock,
    async call(path, body = {}, opts = {}) {
      const method = opts.method ?? "POST";
      const text = method === "GET" || method === "DELETE" ? "" : JSON.stringify(body);
      const init = await signedFetchInit(
        opts.creds ?? operator,
        opts.region ?? cp.options.region,
        method,
        path,
        opts.query,
        text,
        opts.signingDate ?? new Date(clock.now),
      );
      opts.tamper?.(init);
      const qs = opts.query
        ? `?${Object.entries(opts.query)
            .flatMap(([k, vs]) => vs.map((v) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
            .join("&")}`
        : "";
      const res = await cp.app.request(`https://mgn.ferry.test${path}${qs}`, {
        method,
        headers: init.headers,
        ...(method === "GET" || method === "DELETE" ? {} : { body: init.body }),
      });
      const raw = await res.text();
      return {
        status: res.status,
        headers: res.headers,
        body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
      };
    },
    async close() {
      try {
        await cp.close();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** A plausible registration body for a source machine. */
export function registration(identity: string, extra: Record<string, unknown> = {}) {
  return {
    identity,
    sourceProperties: {
      identificationHints: {
        hostname: `host-${identity.slice(0, 8)}`,
        fqdn: `host-${identity.slice(0, 8)}.example.internal`,
      },
      networkInterfaces: [{ macAddress: "52:54:00:12:34:56", ips: ["10.0.0.5"], isPrimary: true }],
      disks: [
        { deviceName: "/dev/vda", bytes: 8 * 2 ** 30 },
        { deviceName: "/dev/vdb", bytes: 2 * 2 ** 30 },
      ],
      cpus: [{ cores: 2, modelName: "QEMU Virtual CPU" }],
      ramBytes: 4 * 2 ** 30,
      os: { fullString: "Debian GNU/Linux 12 (bookworm)" },
    },
    ...extra,
  };
}
