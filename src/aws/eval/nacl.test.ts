import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseCidr } from "../model/cidr.ts";
import type { NetworkAcl, NetworkAclEntry } from "../model/ec2-shapes.ts";
import { aclAllows } from "./nacl.ts";

/** The plain reading of the rules for one port: sort, first entry that matches the whole peer decides. */
function naive(entries: NetworkAclEntry[], port: number): boolean {
  const peer = parseCidr("10.1.1.0/24");
  for (const e of [...entries].sort((a, b) => a.RuleNumber - b.RuleNumber)) {
    if (e.Egress) continue;
    if (e.Protocol !== "-1" && e.Protocol !== "6") continue;
    if (e.Protocol !== "-1" && e.PortRange && (port < e.PortRange.From || port > e.PortRange.To)) continue;
    // Entries here are either 0.0.0.0/0 or a block containing the peer, or disjoint from it.
    const c = parseCidr(e.CidrBlock ?? "0.0.0.0/0");
    const covers =
      c.prefix <= 24 &&
      (peer.network & (c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0)) >>> 0 === c.network;
    if (!covers) continue;
    return e.RuleAction === "allow";
  }
  return false;
}

const entry = fc.record({
  RuleNumber: fc.integer({ min: 1, max: 200 }),
  Protocol: fc.constantFrom("-1", "6", "17"),
  RuleAction: fc.constantFrom("allow" as const, "deny" as const),
  Egress: fc.boolean(),
  CidrBlock: fc.constantFrom("0.0.0.0/0", "10.1.0.0/16", "10.2.0.0/16"),
  PortRange: fc
    .tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }))
    .map(([a, b]) => ({ From: Math.min(a, b), To: Math.max(a, b) })),
});

test("property: the interval evaluation agrees with a port-by-port first-match reading", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(entry, { selector: (e) => `${e.Egress}/${e.RuleNumber}`, maxLength: 8 }),
      fc.integer({ min: 0, max: 65535 }),
      (entries, probe) => {
        const acl: NetworkAcl = { NetworkAclId: "acl-1", VpcId: "vpc-1", Entries: entries };
        const { denied } = aclAllows(acl, false, "tcp", 1024, 65535, parseCidr("10.1.1.0/24"));
        const inDenied = (p: number) => denied.some((d) => p >= d.from && p <= d.to);
        const ports = new Set([
          1024,
          65535,
          ...entries.flatMap((e) => [
            e.PortRange.From,
            e.PortRange.To,
            e.PortRange.From - 1,
            e.PortRange.To + 1,
          ]),
        ]);
        if (probe >= 1024) ports.add(probe);
        for (const p of ports) {
          if (p < 1024 || p > 65535) continue;
          assert.equal(!inDenied(p), naive(entries, p), `port ${p}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});
