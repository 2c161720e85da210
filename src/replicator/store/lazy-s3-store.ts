/**
 * The S3 backend, loaded when first used. The AWS SDK costs every process
 * that loads it about 30 MiB and start-up time, and only `--store s3://…`
 * needs it: `openStore` hands out this stand-in, which imports
 * `s3-store.ts` on the first call and passes every call through.
 */
import { checkKey, type ByteRange, type ObjectInfo, type ObjectStore } from "./object-store.ts";
import type { S3Store, S3StoreOptions } from "./s3-store.ts";

export class LazyS3Store implements ObjectStore {
  readonly location: string;
  private readonly options: S3StoreOptions;
  private inner: Promise<S3Store> | undefined;

  constructor(o: S3StoreOptions) {
    this.options = o;
    // As S3Store names it; a bad prefix is refused now, not at the first call.
    this.location = `s3://${o.bucket}/${o.prefix ? `${checkKey(o.prefix)}/` : ""}`;
  }

  private store(): Promise<S3Store> {
    this.inner ??= import("./s3-store.ts").then(({ S3Store }) => new S3Store(this.options));
    return this.inner;
  }

  async put(key: string, body: Buffer | readonly Buffer[]): Promise<void> {
    return (await this.store()).put(key, body);
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    return (await this.store()).get(key, range);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    return (await this.store()).list(prefix);
  }

  async delete(key: string): Promise<void> {
    return (await this.store()).delete(key);
  }

  async removeVolume(prefix: string): Promise<number> {
    return (await this.store()).removeVolume(prefix);
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    return (await this.store()).putMeta(key, value);
  }

  async getMeta(key: string): Promise<Buffer | undefined> {
    return (await this.store()).getMeta(key);
  }

  /** Closes the client if one was made (a store never used loads nothing to close). */
  async close(): Promise<void> {
    if (this.inner) await (await this.inner).close();
  }
}
