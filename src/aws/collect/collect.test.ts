import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { ID } from "../corpus/ids.ts";
import { referenceSetup } from "../corpus/reference.ts";
import { checkInventory } from "../eval/check.ts";
import { loadInventory } from "../model/loader.ts";
import { collectInventory } from "./collect.ts";
import { startFakeAws } from "./fake-aws.ts";

const credentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/** Dates come back from the SDK as ISO strings with Z; compare without them. */
function withoutDates(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v), (k, x: unknown) => (/(Timestamp|Time)$/.test(k) ? undefined : x));
}

test("collect writes exactly the AWS CLI file set with read-only calls, paging through every list", async () => {
  const reference = referenceSetup();
  reference["get-replication-configuration-s-1234567890abcdef0.json"] = {
    sourceServerID: "s-1234567890abcdef0",
    stagingAreaSubnetId: ID.stgSubnet,
    associateDefaultSecurityGroup: false,
    replicationServersSecurityGroupsIDs: [ID.sgReplication],
    dataPlaneRouting: "PRIVATE_IP",
    createPublicIP: false,
  };
  const aws = await startFakeAws(reference);
  const out = await mkdtemp(join(tmpdir(), "ferry-collect-"));
  try {
    const written = await collectInventory({
      outDir: out,
      vpcIds: [ID.srcVpc, ID.stgVpc],
      sourceServerIds: ["s-1234567890abcdef0"],
      region: "us-east-1",
      endpointUrl: aws.url,
      credentials,
    });
    assert.deepEqual(written, Object.keys(reference).sort());
    assert.deepEqual((await readdir(out)).sort(), Object.keys(reference).sort());
    for (const name of written) {
      const got = JSON.parse(await readFile(join(out, name), "utf8")) as unknown;
      assert.deepEqual(withoutDates(got), withoutDates(reference[name]), name);
    }
    assert.ok(
      aws.calls.every((c) => /:(Describe|List|Get)/.test(c)),
      aws.calls.join(" "),
    );
    assert.ok(aws.calls.filter((c) => c === "ec2:DescribeSubnets").length === 3, "three pages of subnets");
    const report = checkInventory(await loadInventory(out), {
      sourceSubnetId: ID.srcSubnet,
      sourceGroupIds: [ID.sgSrc],
    });
    assert.deepEqual(
      report.flows.filter((f) => !f.ok).map((f) => f.flow),
      [],
    );
  } finally {
    await aws.close();
    await rm(out, { recursive: true, force: true });
  }
});

test("a failing call is a user error naming the call; nothing is written", async () => {
  const aws = await startFakeAws(referenceSetup());
  const out = join(await mkdtemp(join(tmpdir(), "ferry-collect-")), "out");
  try {
    await assert.rejects(
      collectInventory({
        outDir: out,
        vpcIds: [ID.stgVpc],
        sourceServerIds: ["s-0000000000000000f"],
        region: "us-east-1",
        endpointUrl: aws.url,
        credentials,
      }),
      (err: unknown) =>
        err instanceof FerryError &&
        err.code === "AWS_COLLECT_FAILED" &&
        /get-replication-configuration-s-0000000000000000f failed: ResourceNotFoundException/.test(
          err.message,
        ),
    );
    await assert.rejects(readdir(out), /ENOENT/);
  } finally {
    await aws.close();
    await rm(join(out, ".."), { recursive: true, force: true });
  }
});
