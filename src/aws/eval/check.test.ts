import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryError } from "../../lib/errors.ts";
import { ID } from "../corpus/ids.ts";
import { FIXTURES_DIR } from "../corpus/write.ts";
import { loadInventory } from "../model/loader.ts";
import { checkInventory } from "./check.ts";
import { flowsForError } from "./from-error.ts";

const reference = await loadInventory(join(FIXTURES_DIR, "reference"));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FerryError) return err.code;
    throw err;
  }
  return "no error";
}

test("source flags that do not match the input are user errors", () => {
  assert.equal(
    code(() => checkInventory(reference, {})),
    "AWS_NO_SOURCE",
  );
  assert.equal(
    code(() => checkInventory(reference, { sourceSubnetId: "subnet-0123" })),
    "AWS_SOURCE_SUBNET_UNKNOWN",
  );
  assert.equal(
    code(() => checkInventory(reference, { sourceSubnetId: ID.srcSubnet, sourceGroupIds: ["sg-0999"] })),
    "AWS_SOURCE_GROUP_UNKNOWN",
  );
  assert.equal(
    code(() => checkInventory(reference, { sourceCidr: "10.1.0.0/33" })),
    "AWS_BAD_CIDR",
  );
});

test("without templates or an mgn endpoint the staging VPC must be named", () => {
  const bare = { ...reference, templates: [], vpcEndpoints: [] };
  assert.equal(
    code(() => checkInventory(bare, { sourceCidr: "10.1.0.0/16" })),
    "AWS_NO_STAGING_VPC",
  );
  const named = checkInventory(bare, { sourceCidr: "10.1.0.0/16", stagingVpcId: ID.stgVpc });
  assert.equal(named.stagingVpcId, ID.stgVpc);
  assert.deepEqual(
    named.flows.find((f) => f.flow === "F7")?.findings.map((f) => f.code),
    ["TEMPLATE_MISSING"],
  );
});

test("the source's default group is assumed, and said, when no --source-group is given", () => {
  const r = checkInventory(reference, { sourceSubnetId: ID.srcSubnet });
  assert.ok(r.flows.every((f) => f.ok));
  assert.deepEqual(r.notes, [
    `source servers assumed to carry ${ID.sgSrcDefault} (the default group of ${ID.srcVpc}); pass --source-group to name theirs`,
  ]);
});

test("the region comes from the staging subnet's zone unless given", () => {
  assert.equal(checkInventory(reference, { sourceCidr: "10.1.0.0/16" }).region, "us-east-1");
  // In another region none of the endpoints' service names match: every endpoint is missing.
  const r = checkInventory(reference, { sourceCidr: "10.1.0.0/16", region: "eu-west-1" });
  assert.equal(r.region, "eu-west-1");
  assert.ok(r.flows.find((f) => f.flow === "F2")?.findings.some((f) => f.code === "VPCE_MISSING"));
});

test("OBS-01: MGN steps and errors point at flows", () => {
  assert.deepEqual(flowsForError("AUTHENTICATE_WITH_SERVICE"), ["F4"]);
  assert.deepEqual(flowsForError("FAILED_TO_DOWNLOAD_REPLICATION_SOFTWARE"), ["F6"]);
  assert.deepEqual(flowsForError("CONNECT_AGENT_TO_REPLICATION_SERVER"), ["F7"]);
  assert.deepEqual(flowsForError("AGENT_NOT_SEEN"), ["F2", "F3"]);
  assert.equal(
    code(() => flowsForError("NOT_A_STEP")),
    "AWS_UNKNOWN_MGN_ERROR",
  );
});

test("a rule naming a prefix list that was not collected is a note, and its flow is still reported", () => {
  const inv = structuredClone(reference);
  const g = inv.securityGroups.find((x) => x.GroupId === ID.sgEndpoints)!;
  g.IpPermissions = [
    {
      IpProtocol: "tcp",
      FromPort: 443,
      ToPort: 443,
      PrefixListIds: [{ PrefixListId: "pl-0123456789abcdef0" }],
    },
  ];
  const r = checkInventory(inv, { sourceCidr: "10.1.0.0/16" });
  assert.equal(r.flows.find((f) => f.flow === "F2")?.ok, false);
  assert.ok(
    r.notes.some((n) => n.startsWith(`${ID.sgEndpoints} refers to pl-0123456789abcdef0, which is not in`)),
  );
});
