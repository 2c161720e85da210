import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { cidrContains, cidrOverlaps, formatIpv4, parseCidr, parseIpv4, tryParseCidr } from "./cidr.ts";

test("parses and normalises CIDR blocks", () => {
  assert.equal(parseCidr("10.1.2.3/16").text, "10.1.0.0/16");
  assert.equal(parseCidr("0.0.0.0/0").network, 0);
  assert.equal(parseCidr("10.0.0.5").prefix, 32);
  assert.equal(tryParseCidr("10.0.0.0/33"), undefined);
  assert.equal(tryParseCidr("256.0.0.0/8"), undefined);
  assert.equal(tryParseCidr("pl-123"), undefined);
  assert.throws(
    () => parseCidr("nope", "describe-vpcs.json Vpcs[0].CidrBlock"),
    /describe-vpcs.json Vpcs\[0\]\.CidrBlock: "nope"/,
  );
});

test("containment and overlap", () => {
  const vpc = parseCidr("10.0.0.0/16");
  assert.ok(cidrContains(vpc, parseCidr("10.0.1.0/24")));
  assert.ok(!cidrContains(parseCidr("10.0.1.0/24"), vpc));
  assert.ok(cidrContains(parseCidr("0.0.0.0/0"), vpc));
  assert.ok(cidrOverlaps(parseCidr("10.0.1.0/24"), vpc));
  assert.ok(!cidrOverlaps(parseCidr("10.1.0.0/16"), vpc));
});

test("property: an address round-trips and a block contains its own addresses", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
      assert.equal(parseIpv4(formatIpv4(ip)), ip);
      const block = parseCidr(`${formatIpv4(ip)}/${prefix}`);
      assert.ok(cidrContains(block, parseCidr(formatIpv4(ip))));
      assert.ok(cidrContains(parseCidr("0.0.0.0/0"), block));
    }),
  );
});
