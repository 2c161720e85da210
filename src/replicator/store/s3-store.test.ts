/** The S3 backend against a real S3-compatible server (s3rver) on loopback, path-style. */
import { S3RVER_CREDENTIALS, startS3rver } from "../../../test/support/s3rver.ts";
import { openStore } from "./index.ts";
import { objectStoreContract } from "./object-store.contract.ts";
import { S3Store } from "./s3-store.ts";

objectStoreContract("S3Store (s3rver)", async () => {
  const s3 = await startS3rver("ferry-staging");
  const store = new S3Store({
    bucket: "ferry-staging",
    prefix: "replicator-1",
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  return { store, cleanup: () => s3.close() };
});

// What `ferry replicator run --store s3://…` gets: the same backend, loaded on first use.
objectStoreContract("s3:// URL (s3rver, loaded on first use)", async () => {
  const s3 = await startS3rver("ferry-staging");
  const store = openStore("s3://ferry-staging/replicator-2", {
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  return { store, cleanup: () => s3.close() };
});
