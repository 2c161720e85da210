/**
 * `ferry release publish`: uploads the agent package, its `.sha256` and the
 * installer script to an S3-compatible bucket, under `latest/linux/` and
 * under `<version>/linux/`, where `ferry-installer-init` looks for them
 * (virtual-hosted `https://<bucket>.<s3-endpoint>/…` or path style).
 */
import { readFile } from "node:fs/promises";
import { Agent } from "node:https";
import { basename } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { FerryError } from "../lib/errors.ts";
import { parseResolve, staticLookup } from "../lib/static-resolve.ts";

export interface PublishOptions {
  /** Host[:port] (or https:// URL) of the S3-compatible endpoint. */
  s3Endpoint: string;
  bucket: string;
  region: string;
  /** `https://<endpoint>/<bucket>/key` instead of `https://<bucket>.<endpoint>/key`. @default false */
  pathStyle?: boolean;
  /** Default: the SDK's credential chain (environment, profile, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** PEM of a CA to trust for the endpoint (a private S3-compatible store). */
  caPem?: string;
  resolve?: string[];
  /** The files to upload: package, its .sha256, the installer. */
  files: string[];
  version: string;
}

export interface PublishedObject {
  key: string;
  bytes: number;
  url: string;
}

/** `https://host[:port]` from what an operator passes as `--s3-endpoint`. */
export function s3EndpointUrl(s3Endpoint: string): URL {
  const text = /^https?:\/\//.test(s3Endpoint) ? s3Endpoint : `https://${s3Endpoint.replace(/^\*\./, "")}`;
  try {
    return new URL(text);
  } catch {
    throw new FerryError(
      "BAD_S3_ENDPOINT",
      `--s3-endpoint ${s3Endpoint} is not a host name (for example vpce-….s3.eu-central-1.vpce.amazonaws.com)`,
    );
  }
}

function contentType(name: string): string {
  if (name.endsWith(".tar.gz")) return "application/gzip";
  return "text/plain";
}

export async function publishAgentPackage(o: PublishOptions): Promise<PublishedObject[]> {
  const endpoint = s3EndpointUrl(o.s3Endpoint);
  const hosts = parseResolve(o.resolve ?? []);
  const httpsAgent = new Agent({
    ...(o.caPem ? { ca: o.caPem } : {}),
    ...(hosts.size ? { lookup: staticLookup(hosts) } : {}),
  });
  const s3 = new S3Client({
    region: o.region,
    endpoint: endpoint.origin,
    forcePathStyle: o.pathStyle ?? false,
    ...(o.credentials ? { credentials: o.credentials } : {}),
    requestHandler: { httpsAgent },
  });
  const published: PublishedObject[] = [];
  try {
    for (const prefix of ["latest", o.version]) {
      for (const file of o.files) {
        const name = basename(file);
        const key = `${prefix}/linux/${name}`;
        const body = await readFile(file);
        try {
          await s3.send(
            new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: body, ContentType: contentType(name) }),
          );
        } catch (err) {
          const e = err as { name?: string; message?: string };
          throw new FerryError(
            "PUBLISH_FAILED",
            `uploading s3://${o.bucket}/${key} to ${endpoint.origin} failed (${e.name ?? "error"}: ${e.message ?? String(err)}): check --s3-endpoint, --bucket, --path-style, the credentials and that the bucket exists`,
            { cause: err },
          );
        }
        const url = o.pathStyle
          ? `${endpoint.origin}/${o.bucket}/${key}`
          : `${endpoint.protocol}//${o.bucket}.${endpoint.host}/${key}`;
        published.push({ key, bytes: body.length, url });
      }
    }
  } finally {
    s3.destroy();
    httpsAgent.destroy();
  }
  return published;
}
