/**
 * Real MGN clients for the control-plane scenarios: the AWS CLI
 * (`aws mgn … --endpoint-url … --ca-bundle …`) and @aws-sdk/client-mgn, behind
 * one `call(operation, input)` so the same flow runs through both. Errors come
 * back as `MgnCallError` with the exception name the client reported.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import * as mgn from "@aws-sdk/client-mgn";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import type { Credentials } from "../../src/control/testing.ts";

export class MgnCallError extends Error {
  readonly type: string;
  constructor(type: string, message: string) {
    super(`${type}: ${message}`);
    this.type = type;
  }
}

export interface Endpoint {
  url: string;
  caFile: string;
  region: string;
}

export interface Driver {
  name: string;
  call(operation: string, input?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

function kebab(op: string): string {
  return op.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase();
}

export function awsCliDriver(ep: Endpoint, creds: Credentials): Driver {
  return {
    name: "aws-cli",
    call(operation, input = {}) {
      const args = [
        "mgn",
        kebab(operation),
        "--endpoint-url",
        ep.url,
        "--ca-bundle",
        ep.caFile,
        "--region",
        ep.region,
        "--output",
        "json",
      ];
      if (Object.keys(input).length) args.push("--cli-input-json", JSON.stringify(input));
      return new Promise((resolve, reject) => {
        execFile(
          "aws",
          args,
          {
            timeout: 60_000,
            env: {
              ...process.env,
              AWS_ACCESS_KEY_ID: creds.accessKeyId,
              AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
              AWS_SESSION_TOKEN: "",
              AWS_CONFIG_FILE: "/dev/null",
              AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
              AWS_EC2_METADATA_DISABLED: "true",
              AWS_PAGER: "",
              AWS_MAX_ATTEMPTS: "1",
            },
          },
          (err, stdout, stderr) => {
            if (err) {
              const m = /An error occurred \((\w+)\)[^:]*: (.*)/.exec(stderr);
              reject(
                m
                  ? new MgnCallError(m[1]!, m[2]!)
                  : new Error(`aws ${args.slice(0, 2).join(" ")} failed: ${stderr || err.message}`),
              );
              return;
            }
            resolve(stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : {});
          },
        );
      });
    },
  };
}

export function sdkDriver(ep: Endpoint, creds: Credentials): Driver & { destroy(): void } {
  const client = new mgn.MgnClient({
    endpoint: ep.url,
    region: ep.region,
    credentials: creds,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(ep.caFile) }) }),
  });
  return {
    name: "sdk",
    async call(operation, input = {}) {
      const Ctor = (mgn as unknown as Record<string, new (i: unknown) => Parameters<typeof client.send>[0]>)[
        `${operation}Command`
      ];
      if (!Ctor) throw new Error(`no ${operation}Command in @aws-sdk/client-mgn`);
      try {
        const out = (await client.send(new Ctor(input))) as unknown as Record<string, unknown>;
        const { $metadata: _m, ...rest } = out;
        return rest;
      } catch (err) {
        const e = err as { name?: string; message?: string; $metadata?: unknown };
        if (e.$metadata && e.name) throw new MgnCallError(e.name, e.message ?? "");
        throw err;
      }
    },
    destroy: () => client.destroy(),
  };
}

/** An agent-side call: SigV4-signed JSON over HTTPS, checked against the server's CA. */
export async function agentCall(
  ep: Endpoint,
  creds: Credentials,
  path: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const text = JSON.stringify(body);
  const url = new URL(path, ep.url);
  const signed = await signedHeaders(creds, ep, path, text);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: signed, ca: readFileSync(ep.caFile), timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
          });
        });
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("agent call timed out")));
    req.end(text);
  });
}

async function signedHeaders(
  creds: Credentials,
  ep: Endpoint,
  path: string,
  body: string,
): Promise<Record<string, string>> {
  const url = new URL(path, ep.url);
  const signer = new SignatureV4({ credentials: creds, region: ep.region, service: "mgn", sha256: Sha256 });
  const signed = await signer.sign({
    method: "POST",
    protocol: "https:",
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    query: {},
    headers: { host: url.host, "content-type": "application/json" },
    body,
  });
  return signed.headers as Record<string, string>;
}
