import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { FerryError } from "../../lib/errors.ts";
import { ID } from "../corpus/ids.ts";
import { referenceSetup } from "../corpus/reference.ts";
import { loadInventory } from "./loader.ts";

async function withReference(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "ferry-aws-loader-"));
  try {
    for (const [name, value] of Object.entries(referenceSetup()))
      await writeFile(join(dir, name), JSON.stringify(value));
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof FerryError);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

test("loads the reference directory with every collection and attribute", async () => {
  await withReference(async (dir) => {
    const inv = await loadInventory(dir);
    assert.equal(inv.vpcs.length, 2);
    assert.equal(inv.vpcEndpoints.length, 4);
    assert.deepEqual(inv.vpcAttributes.get(ID.stgVpc), { enableDnsSupport: true, enableDnsHostnames: true });
    assert.equal(inv.resolverIpAddresses.get(ID.resolver)?.length, 2);
    assert.equal(inv.templates?.[0]?.replicationConfigurationTemplateID, ID.template);
    assert.deepEqual(inv.missingFiles, []);
  });
});

test("a file that is not what it claims names the file and the field", async () => {
  await withReference(async (dir) => {
    // describe-subnets output saved under the route-table name.
    await writeFile(
      join(dir, "describe-route-tables.json"),
      JSON.stringify(referenceSetup()["describe-subnets.json"]),
    );
    await rejectsWith(
      loadInventory(dir),
      "AWS_INPUT_INVALID",
      /^describe-route-tables\.json: field RouteTables: .*aws ec2 describe-route-tables/,
    );
  });
  await withReference(async (dir) => {
    const subnets = referenceSetup()["describe-subnets.json"] as { Subnets: Record<string, unknown>[] };
    delete subnets.Subnets[1]!.VpcId;
    await writeFile(join(dir, "describe-subnets.json"), JSON.stringify(subnets));
    await rejectsWith(
      loadInventory(dir),
      "AWS_INPUT_INVALID",
      /^describe-subnets\.json: field Subnets\[1\]\.VpcId: /,
    );
  });
  await withReference(async (dir) => {
    await writeFile(join(dir, "describe-vpcs.json"), "{ not json");
    await rejectsWith(loadInventory(dir), "AWS_INPUT_INVALID", /^describe-vpcs\.json: not JSON/);
  });
  await withReference(async (dir) => {
    await writeFile(
      join(dir, `describe-vpc-attribute-${ID.stgVpc}-enableDnsSupport.json`),
      JSON.stringify({ VpcId: ID.stgVpc, EnableDnsHostnames: { Value: true } }),
    );
    await rejectsWith(
      loadInventory(dir),
      "AWS_INPUT_INVALID",
      /enableDnsSupport.*EnableDnsSupport|EnableDnsSupport.*enableDnsSupport/,
    );
  });
});

test("a missing required file is an error; missing optional files are listed, not guessed", async () => {
  await withReference(async (dir) => {
    await unlink(join(dir, "describe-network-acls.json"));
    await rejectsWith(loadInventory(dir), "AWS_INPUT_MISSING", /describe-network-acls\.json is missing/);
  });
  await withReference(async (dir) => {
    await unlink(join(dir, "describe-prefix-lists.json"));
    await unlink(join(dir, "list-resolver-endpoints.json"));
    const inv = await loadInventory(dir);
    assert.deepEqual(inv.missingFiles, ["describe-prefix-lists.json", "list-resolver-endpoints.json"]);
    assert.equal(inv.prefixLists, undefined);
    assert.equal(inv.resolverEndpoints, undefined);
  });
});

test("property: any mutation of a field's type is a typed error naming describe-security-groups.json", async () => {
  await withReference(async (dir) => {
    const file = join(dir, "describe-security-groups.json");
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5 }),
        fc.constantFrom("GroupId", "VpcId", "IpPermissions", "IpPermissionsEgress"),
        fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.constant({})),
        async (index, field, value) => {
          const doc = referenceSetup()["describe-security-groups.json"] as {
            SecurityGroups: Record<string, unknown>[];
          };
          doc.SecurityGroups[index]![field] = value;
          await writeFile(file, JSON.stringify(doc));
          await rejectsWith(
            loadInventory(dir),
            "AWS_INPUT_INVALID",
            new RegExp(`^describe-security-groups\\.json: field SecurityGroups\\[${index}\\]\\.${field}`),
          );
        },
      ),
      { numRuns: 40 },
    );
  });
});

test("shapes real accounts hold besides MGN's load: IPv6-only subnet, ENI without groups, Resource endpoint", async () => {
  await withReference(async (dir) => {
    const f = referenceSetup();
    (f["describe-subnets.json"] as { Subnets: unknown[] }).Subnets.push({
      SubnetId: "subnet-0bbb00000000000ff",
      VpcId: ID.stgVpc,
      Ipv6Native: true,
      Ipv6CidrBlockAssociationSet: [{ Ipv6CidrBlock: "2600:1f18:1::/64" }],
    });
    (f["describe-network-interfaces.json"] as { NetworkInterfaces: unknown[] }).NetworkInterfaces.push({
      NetworkInterfaceId: "eni-0fff0000000000001",
      SubnetId: "subnet-0bbb00000000000ff",
      VpcId: ID.stgVpc,
      InterfaceType: "gateway_load_balancer_endpoint",
      Ipv6Address: "2600:1f18:1::10",
    });
    (f["describe-vpc-endpoints.json"] as { VpcEndpoints: unknown[] }).VpcEndpoints.push({
      VpcEndpointId: "vpce-0fff0000000000002",
      VpcEndpointType: "Resource",
      VpcId: ID.stgVpc,
      State: "available",
      ResourceConfigurationArn: `arn:aws:vpc-lattice:us-east-1:${ID.account}:resourceconfiguration/rcfg-0123`,
    });
    for (const name of [
      "describe-subnets.json",
      "describe-network-interfaces.json",
      "describe-vpc-endpoints.json",
    ]) {
      await writeFile(join(dir, name), JSON.stringify(f[name]));
    }
    const inv = await loadInventory(dir);
    assert.equal(inv.subnets.length, 4);
    assert.deepEqual(inv.networkInterfaces.at(-1)?.Groups, []);
    assert.equal(inv.vpcEndpoints.at(-1)?.ServiceName, "");
  });
});
