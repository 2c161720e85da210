/**
 * Opens a staging store from a URL: a directory path, or s3://bucket/prefix.
 * The S3 backend (and the AWS SDK) is loaded only when an s3:// store is
 * first used (lazy-s3-store.ts); import `S3Store` from s3-store.ts to use it
 * directly.
 */
import { FerryError } from "../../lib/errors.ts";
import { LazyS3Store } from "./lazy-s3-store.ts";
import { LocalDirectoryStore } from "./local-directory-store.ts";
import type { ObjectStore } from "./object-store.ts";
import type { S3StoreOptions } from "./s3-store.ts";

export type { ObjectStore, ObjectInfo, ByteRange, AppendableObject } from "./object-store.ts";
export type { S3StoreOptions } from "./s3-store.ts";
export { LocalDirectoryStore } from "./local-directory-store.ts";

export interface StoreUrlOptions extends Omit<S3StoreOptions, "bucket" | "prefix"> {
  readOnly?: boolean;
}

export function openStore(url: string, o: StoreUrlOptions = {}): ObjectStore {
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length).replace(/\/+$/, "");
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1);
    if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(bucket)) {
      throw new FerryError(
        "INVALID_STORE_URL",
        `"${url}" does not name an S3 bucket: use s3://bucket/prefix`,
      );
    }
    const { readOnly: _ro, ...s3 } = o;
    return new LazyS3Store({ ...s3, bucket, ...(prefix ? { prefix } : {}) });
  }
  if (url.includes("://")) {
    throw new FerryError(
      "INVALID_STORE_URL",
      `unsupported staging store "${url}": use a directory path or s3://bucket/prefix`,
    );
  }
  return new LocalDirectoryStore(url, { readOnly: o.readOnly ?? false });
}
