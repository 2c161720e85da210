/**
 * One connection through the VPC data plane, evaluated the way AWS forwards
 * it: routes on both sides (forward and return), security groups (egress on
 * the sender, ingress on the receiver), network ACLs both ways when the
 * connection crosses a subnet boundary. Every blocker is reported.
 */
import type { Cidr } from "../model/cidr.ts";
import type { SecurityGroup } from "../model/ec2-shapes.ts";
import {
  findSubnet,
  findVpc,
  networkAclOfSubnet,
  prefixListById,
  routeTableOfSubnet,
  vpcCidrs,
} from "../model/inventory.ts";
import {
  type CheckContext,
  inputMissing,
  isActive,
  otherSide,
  peeringById,
  peeringNotActive,
  peeringsBetween,
} from "./context.ts";
import type { Finding } from "./findings.ts";
import { authorizeGroup, createRoute, naclEntry } from "./fixes.ts";
import { aclAllows, EPHEMERAL_FROM, EPHEMERAL_TO, freeRuleNumber } from "./nacl.ts";
import { lookupRoute } from "./routes.ts";
import {
  type GroupReferenceProblem,
  groupsAllow,
  type Protocol,
  type ReferenceRule,
} from "./security-groups.ts";

/** One end of a connection. */
export interface Party {
  /** The resource that names this end in findings: eni-…, rct-…, s-…, or the source CIDR. */
  id: string;
  /** Null when the end lies outside the described VPCs (an on-premises source CIDR). */
  vpcId: string | null;
  subnetId: string | null;
  /** Every address this end may use. */
  cidrs: Cidr[];
  /** Null when unknown (outside the set): that side's groups are not checked. */
  groups: SecurityGroup[] | null;
  /** When this end is a prefix list (S3 via the gateway endpoint). */
  prefixListId?: string;
}

export interface PathSpec {
  rule: string;
  protocol: Protocol;
  port: number;
  from: Party;
  to: Party;
}

function cidrText(p: Party): string {
  return p.prefixListId ?? p.cidrs.map((c) => c.text).join(", ");
}

/** Where a missing route should point: the active peering between the two VPCs, if there is one. */
function suggestedTarget(ctx: CheckContext, from: Party, to: Party): string {
  if (from.vpcId && to.vpcId) {
    const p = peeringsBetween(ctx, from.vpcId, to.vpcId).find(isActive);
    if (p) return p.VpcPeeringConnectionId;
  } else if (from.vpcId) {
    const p = (ctx.inv.peerings ?? []).find(
      (x) =>
        isActive(x) && (x.RequesterVpcInfo.VpcId === from.vpcId || x.AccepterVpcInfo.VpcId === from.vpcId),
    );
    if (p) return p.VpcPeeringConnectionId;
  }
  return "<pcx-id>";
}

function destinationForFix(ctx: CheckContext, to: Party, dest: Cidr): string {
  const vpc = to.vpcId ? findVpc(ctx.inv, to.vpcId) : undefined;
  return vpc ? vpc.CidrBlock : dest.text;
}

/** Forward (from → to) route check on `from`'s subnet. */
export function routeFindings(ctx: CheckContext, rule: string, from: Party, to: Party): Finding[] {
  if (!from.subnetId || !from.vpcId) return [];
  const subnet = findSubnet(ctx.inv, from.subnetId);
  if (!subnet) return [];
  const rt = routeTableOfSubnet(ctx.inv, subnet);
  if (!rt) {
    return [
      {
        rule,
        code: "NO_ROUTE_TO_DESTINATION",
        resources: [subnet.SubnetId],
        found: `${subnet.SubnetId} has no associated route table and ${subnet.VpcId} has no main route table`,
        fix: `aws ec2 associate-route-table --subnet-id ${subnet.SubnetId} --route-table-id <rtb-id>`,
      },
    ];
  }
  const tableId = rt.table.RouteTableId;
  const how = rt.viaMain
    ? `main route table ${tableId} (${subnet.SubnetId} has no explicit association)`
    : tableId;
  const out: Finding[] = [];
  for (const dest of to.cidrs) {
    const m = lookupRoute(ctx.inv, rt.table, dest);
    const target = suggestedTarget(ctx, from, to);
    if (!m) {
      out.push({
        rule,
        code: "NO_ROUTE_TO_DESTINATION",
        resources: [tableId],
        found: `${how} has no route covering ${dest.text}`,
        fix: createRoute(tableId, destinationForFix(ctx, to, dest), target),
      });
      continue;
    }
    if (m.blackhole) {
      out.push({
        rule,
        code: "BAD_STATE_ROUTE",
        resources: [tableId, m.target],
        found: `route ${m.destination} → ${m.target} in ${how} is a blackhole (its target no longer exists or is not active)`,
        fix: createRoute(tableId, m.destination, target, true),
      });
      continue;
    }
    if (m.target === "local") {
      if (to.vpcId !== from.vpcId) {
        out.push({
          rule,
          code: "NO_ROUTE_TO_DESTINATION",
          resources: [tableId],
          found: `${dest.text} falls inside ${from.vpcId}'s own CIDR: the local route keeps it in the VPC`,
          fix: `re-address one side so ${from.vpcId} and ${to.vpcId ?? dest.text} do not overlap`,
        });
      }
      continue;
    }
    if (m.target.startsWith("pcx-")) {
      const peering = peeringById(ctx, m.target);
      if (!peering) {
        out.push(
          ctx.inv.peerings === undefined
            ? inputMissing("TOPO-01", "describe-vpc-peering-connections.json", `the route via ${m.target}`)
            : {
                rule,
                code: "NO_ROUTE_TO_DESTINATION",
                resources: [tableId, m.target],
                found: `route ${m.destination} → ${m.target} in ${how} points at a peering connection that does not exist`,
                fix: createRoute(tableId, m.destination, target, true),
              },
        );
        continue;
      }
      if (!isActive(peering)) out.push(peeringNotActive(peering));
      const far = otherSide(peering, from.vpcId);
      if (to.vpcId !== null && far !== to.vpcId) {
        out.push({
          rule,
          code: "NO_ROUTE_TO_DESTINATION",
          resources: [tableId, m.target],
          found: `route ${m.destination} → ${m.target} in ${how} leads to ${far}, not to ${to.vpcId}`,
          fix: createRoute(
            tableId,
            destinationForFix(ctx, to, dest),
            target,
            m.destination === destinationForFix(ctx, to, dest),
          ),
        });
      }
      continue;
    }
    if (/^(vgw|tgw)-/.test(m.target)) continue; // leaves the described VPCs toward the source network
    out.push({
      rule,
      code: "NO_ROUTE_TO_DESTINATION",
      resources: [tableId, m.target],
      found: `route ${m.destination} → ${m.target} in ${how} does not lead to the private address ${dest.text}`,
      fix: createRoute(tableId, destinationForFix(ctx, to, dest), target),
    });
  }
  return out;
}

/** Referenced groups match in the same VPC, or across an active peering in the same region. */
export function referenceRule(ctx: CheckContext): ReferenceRule {
  return (own, peer) => {
    if (peer === null) return { ok: false, reason: "the peer is outside the described VPCs" };
    if (own === peer) return { ok: true };
    const p = peeringsBetween(ctx, own, peer).find(isActive);
    if (!p) return { ok: false, reason: `no active peering between ${own} and ${peer}` };
    const r1 = p.RequesterVpcInfo.Region;
    const r2 = p.AccepterVpcInfo.Region;
    if (r1 && r2 && r1 !== r2)
      return { ok: false, reason: `${p.VpcPeeringConnectionId} is inter-region (${r1} ↔ ${r2})` };
    return { ok: true };
  };
}

function referenceFindings(problems: GroupReferenceProblem[]): Finding[] {
  return problems.map((p) => ({
    rule: "TOPO-01",
    code: "SG_REFERENCE_ACROSS_PEERING_NOT_SUPPORTED",
    resources: [p.groupId, p.referencedGroupId],
    found: `${p.groupId} references ${p.referencedGroupId}, which cannot match: ${p.reason}`,
    fix: `reference the peer by CIDR instead of by group in ${p.groupId}`,
  }));
}

export function groupFindings(ctx: CheckContext, spec: PathSpec): Finding[] {
  const out: Finding[] = [];
  const rr = referenceRule(ctx);
  const sides: [Party, Party, "egress" | "ingress"][] = [
    [spec.from, spec.to, "egress"],
    [spec.to, spec.from, "ingress"],
  ];
  for (const [self, peer, direction] of sides) {
    if (self.groups === null) continue;
    const problems: GroupReferenceProblem[] = [];
    const ok = groupsAllow(
      ctx.inv,
      self.groups,
      direction,
      spec.protocol,
      spec.port,
      {
        cidrs: peer.cidrs,
        groupIds: peer.groups?.map((g) => g.GroupId) ?? [],
        vpcId: peer.vpcId,
        ...(peer.prefixListId ? { prefixListId: peer.prefixListId } : {}),
      },
      rr,
      problems,
    );
    if (ok) continue;
    out.push(...referenceFindings(problems));
    for (const g of self.groups) {
      for (const rule of [...g.IpPermissions, ...g.IpPermissionsEgress]) {
        for (const pl of rule.PrefixListIds ?? []) {
          if (!prefixListById(ctx.inv, pl.PrefixListId) && pl.PrefixListId !== peer.prefixListId) {
            ctx.notes.push(
              `${g.GroupId} refers to ${pl.PrefixListId}, which is not in describe-prefix-lists.json (a customer-managed list?): its CIDRs were not counted`,
            );
          }
        }
      }
    }
    const ids = self.groups.map((g) => g.GroupId);
    const real = ids.find((id) => id.startsWith("sg-"));
    const peerRange = peer.prefixListId
      ? { prefixListId: peer.prefixListId }
      : { cidr: peer.cidrs[0]?.text ?? "0.0.0.0/0" };
    out.push({
      rule: spec.rule,
      code: "ENI_SG_RULES_MISMATCH",
      resources: [self.id, ...ids],
      found: `${direction} rules of ${ids.length ? ids.join(", ") : "(no groups)"} on ${self.id} allow no ${spec.protocol}/${spec.port} ${direction === "egress" ? "to" : "from"} ${cidrText(peer)}`,
      fix: real
        ? authorizeGroup(direction, real, spec.protocol, spec.port, peerRange)
        : `attach a security group to ${self.id} that allows ${direction} ${spec.protocol}/${spec.port} ${direction === "egress" ? "to" : "from"} ${cidrText(peer)}`,
    });
  }
  return out;
}

export function aclFindings(ctx: CheckContext, spec: PathSpec): Finding[] {
  const { from, to } = spec;
  if (from.subnetId !== null && from.subnetId === to.subnetId) return [];
  const out: Finding[] = [];
  const proto = spec.protocol === "tcp" ? "6" : "17";
  const legs: { side: Party; peer: Party; egress: boolean; ports: [number, number]; what: string }[] = [
    { side: from, peer: to, egress: true, ports: [spec.port, spec.port], what: "request" },
    {
      side: from,
      peer: to,
      egress: false,
      ports: [EPHEMERAL_FROM, EPHEMERAL_TO],
      what: "reply (ephemeral ports)",
    },
    { side: to, peer: from, egress: false, ports: [spec.port, spec.port], what: "request" },
    {
      side: to,
      peer: from,
      egress: true,
      ports: [EPHEMERAL_FROM, EPHEMERAL_TO],
      what: "reply (ephemeral ports)",
    },
  ];
  for (const leg of legs) {
    if (!leg.side.subnetId) continue;
    const subnet = findSubnet(ctx.inv, leg.side.subnetId);
    const acl = subnet && networkAclOfSubnet(ctx.inv, subnet);
    if (!subnet || !acl) continue;
    const blocked: string[] = [];
    const fixes: string[] = [];
    for (const peerCidr of leg.peer.cidrs) {
      for (const d of aclAllows(acl, leg.egress, spec.protocol, leg.ports[0], leg.ports[1], peerCidr)
        .denied) {
        blocked.push(
          `${d.from === d.to ? d.from : `${d.from}-${d.to}`} ${leg.egress ? "to" : "from"} ${peerCidr.text} (rule ${d.ruleNumber === 32767 ? "*" : d.ruleNumber})`,
        );
        fixes.push(
          naclEntry(
            acl.NetworkAclId,
            leg.egress,
            freeRuleNumber(acl, leg.egress, d.ruleNumber),
            proto,
            d.from,
            d.to,
            peerCidr.text,
          ),
        );
      }
    }
    if (blocked.length === 0) continue;
    out.push({
      rule: spec.rule,
      code: "SUBNET_ACL_RESTRICTION",
      resources: [acl.NetworkAclId, subnet.SubnetId],
      found: `${acl.NetworkAclId} ${leg.egress ? "outbound" : "inbound"} denies the ${leg.what} ${spec.protocol} ${blocked.join("; ")}`,
      fix: [...new Set(fixes)].join(" && "),
    });
  }
  return out;
}

/** Every blocker on one connection and its reply. */
export function evaluatePath(ctx: CheckContext, spec: PathSpec): Finding[] {
  return [
    ...routeFindings(ctx, spec.rule, spec.from, spec.to),
    ...routeFindings(ctx, spec.rule, spec.to, spec.from),
    ...groupFindings(ctx, spec),
    ...aclFindings(ctx, spec),
  ];
}

/** The CIDRs of a VPC (helper for parties that stand for a whole VPC). */
export function vpcCidrTexts(ctx: CheckContext, vpcId: string): string[] {
  const vpc = findVpc(ctx.inv, vpcId);
  return vpc ? vpcCidrs(vpc) : [];
}
