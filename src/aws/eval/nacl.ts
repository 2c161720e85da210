/**
 * Stateless network-ACL evaluation: entries of one direction in ascending
 * RuleNumber, first match wins, Protocol a numeric string. A port range is
 * evaluated interval by interval so a deny in the middle of the ephemeral
 * range is found.
 */
import { type Cidr, cidrContains, cidrOverlaps, tryParseCidr } from "../model/cidr.ts";
import type { NetworkAcl, NetworkAclEntry } from "../model/ec2-shapes.ts";
import type { Protocol } from "./security-groups.ts";

export const EPHEMERAL_FROM = 1024;
export const EPHEMERAL_TO = 65535;

export interface AclVerdict {
  /** Port intervals no entry allows, merged; empty when all pass. */
  denied: { from: number; to: number; ruleNumber: number }[];
}

function protocolNumber(protocol: Protocol): string {
  return protocol === "tcp" ? "6" : "17";
}

type Decision = { action: "allow" | "deny"; ruleNumber: number };

/** First matching entry for `port` from every address of `peer`. */
function decide(entries: NetworkAclEntry[], protocol: Protocol, port: number, peer: Cidr): Decision {
  for (const e of entries) {
    if (e.Protocol !== "-1" && e.Protocol !== protocolNumber(protocol)) continue;
    if (e.Protocol !== "-1" && e.PortRange && (port < e.PortRange.From || port > e.PortRange.To)) continue;
    const cidr = e.CidrBlock ? tryParseCidr(e.CidrBlock) : undefined;
    if (!cidr || !cidrOverlaps(cidr, peer)) continue;
    // A deny touching part of the peer's range blocks those addresses; an allow
    // must cover the whole range to decide for all of it.
    if (e.RuleAction === "deny") return { action: "deny", ruleNumber: e.RuleNumber };
    if (cidrContains(cidr, peer)) return { action: "allow", ruleNumber: e.RuleNumber };
  }
  return { action: "deny", ruleNumber: 32767 };
}

/** Evaluates `acl` for traffic to/from `peer` on ports [from, to] in one direction. */
export function aclAllows(
  acl: NetworkAcl,
  egress: boolean,
  protocol: Protocol,
  from: number,
  to: number,
  peer: Cidr,
): AclVerdict {
  const entries = acl.Entries.filter((e) => e.Egress === egress && e.CidrBlock !== undefined).sort(
    (a, b) => a.RuleNumber - b.RuleNumber,
  );
  // Every entry boundary splits [from, to] into intervals that all entries treat alike.
  const cuts = new Set<number>([from]);
  for (const e of entries) {
    if (!e.PortRange) continue;
    if (e.PortRange.From > from && e.PortRange.From <= to) cuts.add(e.PortRange.From);
    if (e.PortRange.To + 1 > from && e.PortRange.To + 1 <= to) cuts.add(e.PortRange.To + 1);
  }
  const starts = [...cuts].sort((a, b) => a - b);
  const denied: AclVerdict["denied"] = [];
  starts.forEach((start, i) => {
    const end = (starts[i + 1] ?? to + 1) - 1;
    const d = decide(entries, protocol, start, peer);
    if (d.action === "allow") return;
    const last = denied.at(-1);
    if (last && last.to + 1 === start && last.ruleNumber === d.ruleNumber) last.to = end;
    else denied.push({ from: start, to: end, ruleNumber: d.ruleNumber });
  });
  return { denied };
}

/** A free rule number that evaluates before `below` (the entry that denies), for the proposed fix. */
export function freeRuleNumber(acl: NetworkAcl, egress: boolean, below: number): number {
  const used = new Set(acl.Entries.filter((e) => e.Egress === egress).map((e) => e.RuleNumber));
  for (let n = 10; n < below; n += 10) if (!used.has(n)) return n;
  for (let n = below - 1; n >= 1; n--) if (!used.has(n)) return n;
  return 1;
}
