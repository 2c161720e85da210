/** Opens a staging store from a URL: a directory path, or s3://bucket/prefix. */
import { FerryError } from "../../lib/errors.ts";
import { LocalDirectoryStore } from "./local-directory-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { S3Store, type S3StoreOptions } from "./s3-store.ts";

export type { ObjectStore, ObjectInfo, ByteRange, AppendableObject } from "./object-store.ts";
export { LocalDirectoryStore } from "./local-directory-store.ts";
export { S3Store } from "./s3-store.ts";

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
    return new S3Store({ ...s3, bucket, ...(prefix ? { prefix } : {}) });
  }
  if (url.includes("://")) {
    throw new FerryError(
      "INVALID_STORE_URL",
      `unsupported staging store "${url}": use a directory path or s3://bucket/prefix`,
    );
  }
  return new LocalDirectoryStore(url, { readOnly: o.readOnly ?? false });
}
