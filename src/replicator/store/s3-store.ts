/**
 * S3-compatible object storage as the staging store, for replicators that
 * must not keep state on their own disks. A PUT is atomic and durable when
 * acknowledged; metadata records are small objects replaced by PUT.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { FerryError } from "../../lib/errors.ts";
import {
  checkKey,
  checkPrefix,
  checkVolumePrefix,
  notFound,
  removalRank,
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
} from "./object-store.ts";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing "/"). @default "" */
  prefix?: string;
  /** e.g. "https://127.0.0.1:9000" for an S3-compatible server. */
  endpoint?: string;
  /** @default "us-east-1" */
  region?: string;
  /** Path-style addressing (bucket in the path), which most S3-compatible servers want. @default false */
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Extra client settings (e.g. a request handler trusting a private CA). */
  client?: Partial<S3ClientConfig>;
}

const REMOVE_PARALLEL = 8;

export class S3Store implements ObjectStore {
  readonly location: string;
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = o.prefix ? `${checkKey(o.prefix)}/` : "";
    this.location = `s3://${o.bucket}/${this.prefix}`;
    this.s3 = new S3Client({
      region: o.region ?? "us-east-1",
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle ?? false,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      ...o.client,
    });
  }

  async put(key: string, body: Buffer | readonly Buffer[]): Promise<void> {
    const data = Buffer.isBuffer(body) ? body : Buffer.concat(body);
    await this.call("put", key, () =>
      this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + checkKey(key), Body: data }),
      ),
    );
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    if (range && range.length === 0) return Buffer.alloc(0);
    const out = await this.call("get", key, () =>
      this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + checkKey(key),
          ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
        }),
      ),
    );
    const bytes = Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array());
    if (range && bytes.length !== range.length)
      throw notFound(this.location, `${key}@${range.offset}+${range.length}`);
    return bytes;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    checkPrefix(prefix);
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    for (let page = 0; page < 100_000; page++) {
      const res = await this.call("list", prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key) out.push({ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 });
      }
      if (!res.IsTruncated || !res.NextContinuationToken) break;
      token = res.NextContinuationToken;
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await this.call("delete", key, () =>
      this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + checkKey(key) })),
    );
  }

  /** Deletes the volume's objects group by group (manifests, head, the rest), a few at a time. */
  async removeVolume(prefix: string): Promise<number> {
    checkVolumePrefix(prefix);
    const keys = (await this.list(prefix)).map((o) => o.key);
    for (const rank of [0, 1, 2]) {
      const group = keys.filter((k) => removalRank(k) === rank);
      for (let i = 0; i < group.length; i += REMOVE_PARALLEL) {
        await Promise.all(group.slice(i, i + REMOVE_PARALLEL).map((k) => this.delete(k)));
      }
    }
    return keys.length;
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    await this.put(key, value);
  }

  async getMeta(key: string): Promise<Buffer | undefined> {
    try {
      return await this.get(key);
    } catch (err) {
      if (err instanceof FerryError && err.code === "OBJECT_NOT_FOUND") return undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }

  private async call<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof FerryError) throw err;
      const name = (err as { name?: string }).name;
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (name === "NoSuchKey" || name === "NotFound" || status === 404 || name === "InvalidRange") {
        throw notFound(this.location, key, err);
      }
      throw new FerryError(
        "STAGING_IO_ERROR",
        `staging store ${op} of ${key} failed at ${this.location}: ${(err as Error).message}; check the endpoint, bucket and credentials`,
        { details: { location: this.location, op, key, name, status }, cause: err },
      );
    }
  }
}
