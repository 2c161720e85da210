/**
 * Stateful security-group evaluation: a connection is allowed when an egress
 * rule of the sender's ENI and an ingress rule of the receiver's ENI match it
 * (the reply is allowed implicitly). Rules match by CIDR containment, prefix
 * list, or referenced group carried by the peer ENI.
 */
import { type Cidr, cidrContains, tryParseCidr } from "../model/cidr.ts";
import type { IpPermission, SecurityGroup } from "../model/ec2-shapes.ts";
import { type AwsInventory, prefixListById } from "../model/inventory.ts";

export type Protocol = "tcp" | "udp";

/** The other end of a connection as a rule sees it. */
export interface Peer {
  /** Every address the peer may use; a rule must cover all of them. */
  cidrs: Cidr[];
  /** The peer's groups when known (an ENI in the set). */
  groupIds: string[];
  vpcId: string | null;
  /** A prefix list the peer is (S3 via the gateway endpoint). */
  prefixListId?: string;
}

export interface GroupReferenceProblem {
  groupId: string;
  referencedGroupId: string;
  reason: string;
}

/** Decides whether a referenced group may match across VPCs: same VPC, or an active same-region peering. */
export type ReferenceRule = (
  ownVpcId: string,
  peerVpcId: string | null,
) => { ok: true } | { ok: false; reason: string };

function protocolMatches(p: IpPermission, protocol: Protocol, port: number): boolean {
  const proto = p.IpProtocol.toLowerCase();
  if (proto === "-1" || proto === "all") return true;
  const wanted = protocol === "tcp" ? ["tcp", "6"] : ["udp", "17"];
  if (!wanted.includes(proto)) return false;
  const from = p.FromPort ?? 0;
  const to = p.ToPort ?? 65535;
  return (from === -1 && to === -1) || (port >= from && port <= to);
}

function cidrsCovered(inv: AwsInventory, p: IpPermission, peer: Peer): boolean {
  const ranges: Cidr[] = [];
  for (const r of p.IpRanges ?? []) {
    const c = tryParseCidr(r.CidrIp);
    if (c) ranges.push(c);
  }
  for (const pl of p.PrefixListIds ?? []) {
    if (peer.prefixListId !== undefined && pl.PrefixListId === peer.prefixListId) return true;
    for (const text of prefixListById(inv, pl.PrefixListId)?.Cidrs ?? []) {
      const c = tryParseCidr(text);
      if (c) ranges.push(c);
    }
  }
  return peer.cidrs.length > 0 && peer.cidrs.every((pc) => ranges.some((r) => cidrContains(r, pc)));
}

/**
 * True when one of `groups` allows `protocol`/`port` with `peer` in `direction`.
 * Group references that cannot apply across the peering are reported in `problems`.
 */
export function groupsAllow(
  inv: AwsInventory,
  groups: readonly SecurityGroup[],
  direction: "ingress" | "egress",
  protocol: Protocol,
  port: number,
  peer: Peer,
  referenceRule: ReferenceRule,
  problems: GroupReferenceProblem[] = [],
): boolean {
  for (const group of groups) {
    const rules = direction === "ingress" ? group.IpPermissions : group.IpPermissionsEgress;
    for (const rule of rules) {
      if (!protocolMatches(rule, protocol, port)) continue;
      if (cidrsCovered(inv, rule, peer)) return true;
      for (const pair of rule.UserIdGroupPairs ?? []) {
        if (pair.GroupId === undefined || !peer.groupIds.includes(pair.GroupId)) continue;
        const verdict = referenceRule(group.VpcId, peer.vpcId);
        if (verdict.ok) return true;
        problems.push({ groupId: group.GroupId, referencedGroupId: pair.GroupId, reason: verdict.reason });
      }
    }
  }
  return false;
}
