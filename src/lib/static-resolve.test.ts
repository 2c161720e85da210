import { test } from "node:test";
import assert from "node:assert/strict";
import type { LookupAddress } from "node:dns";
import { parseResolve, staticLookup } from "./static-resolve.ts";
import { FerryError } from "./errors.ts";

test("parseResolve takes NAME=IP pairs, lower-cases names, keeps the last IP of a repeated name", () => {
  const hosts = parseResolve([
    "Bucket.S3.local=10.0.0.5",
    "ctl.internal=fd00::1",
    "bucket.s3.local=10.0.0.6",
  ]);
  assert.deepEqual(
    [...hosts],
    [
      ["bucket.s3.local", "10.0.0.6"],
      ["ctl.internal", "fd00::1"],
    ],
  );
});

test("parseResolve refuses what is not NAME=IP", () => {
  for (const bad of [
    "bucket.s3.local",
    "=10.0.0.1",
    "host=not-an-ip",
    "bad name=10.0.0.1",
    "host=10.0.0.300",
  ]) {
    assert.throws(
      () => parseResolve([bad]),
      (err: unknown) => err instanceof FerryError && err.code === "BAD_RESOLVE",
      bad,
    );
  }
});

test("staticLookup answers pinned names (single and all) and passes others to the system resolver", async () => {
  const lookup = staticLookup(parseResolve(["pinned.example=192.0.2.7"]));
  const one = await new Promise<[string, number | undefined]>((resolve, reject) =>
    lookup("PINNED.example", {}, (err, address, family) =>
      err ? reject(err) : resolve([address as string, family]),
    ),
  );
  assert.deepEqual(one, ["192.0.2.7", 4]);
  const all = await new Promise<LookupAddress[]>((resolve, reject) =>
    lookup("pinned.example", { all: true }, (err, address) =>
      err ? reject(err) : resolve(address as LookupAddress[]),
    ),
  );
  assert.deepEqual(all, [{ address: "192.0.2.7", family: 4 }]);
  const local = await new Promise<string>((resolve, reject) =>
    lookup("localhost", { family: 4 }, (err, address) => (err ? reject(err) : resolve(address as string))),
  );
  assert.equal(local, "127.0.0.1");
});
