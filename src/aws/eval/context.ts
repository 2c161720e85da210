/** What every evaluation step reads: the inventory, the region, and peering lookups. */
import type { VpcPeeringConnection } from "../model/ec2-shapes.ts";
import type { AwsInventory } from "../model/inventory.ts";
import type { Finding } from "./findings.ts";

export interface CheckContext {
  inv: AwsInventory;
  region: string;
  notes: string[];
}

/** The peering connections (any state) between two VPCs, active ones first. */
export function peeringsBetween(ctx: CheckContext, a: string, b: string): VpcPeeringConnection[] {
  return (ctx.inv.peerings ?? [])
    .filter(
      (p) =>
        (p.RequesterVpcInfo.VpcId === a && p.AccepterVpcInfo.VpcId === b) ||
        (p.RequesterVpcInfo.VpcId === b && p.AccepterVpcInfo.VpcId === a),
    )
    .sort((x, y) => Number(y.Status.Code === "active") - Number(x.Status.Code === "active"));
}

export function peeringById(ctx: CheckContext, id: string): VpcPeeringConnection | undefined {
  return ctx.inv.peerings?.find((p) => p.VpcPeeringConnectionId === id);
}

/** The VPC on the other side of `peering` from `vpcId`. */
export function otherSide(peering: VpcPeeringConnection, vpcId: string): string {
  return peering.RequesterVpcInfo.VpcId === vpcId
    ? peering.AccepterVpcInfo.VpcId
    : peering.RequesterVpcInfo.VpcId;
}

export function isActive(peering: VpcPeeringConnection): boolean {
  return peering.Status.Code === "active";
}

/** TOPO-01: a peering connection that does not forward. */
export function peeringNotActive(peering: VpcPeeringConnection): Finding {
  const code = peering.Status.Code;
  return {
    rule: "TOPO-01",
    code: "VPC_PEERING_CONNECTION_NOT_ACTIVE",
    resources: [peering.VpcPeeringConnectionId],
    found: `${peering.VpcPeeringConnectionId} is in state ${code}${peering.Status.Message ? ` (${peering.Status.Message})` : ""}`,
    fix:
      code === "pending-acceptance"
        ? `aws ec2 accept-vpc-peering-connection --vpc-peering-connection-id ${peering.VpcPeeringConnectionId} (as the accepter account ${peering.AccepterVpcInfo.OwnerId ?? ""})`.replace(
            " ()",
            "",
          )
        : `aws ec2 create-vpc-peering-connection --vpc-id ${peering.RequesterVpcInfo.VpcId} --peer-vpc-id ${peering.AccepterVpcInfo.VpcId}, accept it, and point the routes at the new pcx id`,
  };
}

/** A finding for an optional input file that the step needed. */
export function inputMissing(rule: string, file: string, why: string): Finding {
  return {
    rule,
    code: "INPUT_MISSING",
    resources: [file],
    found: `${file} is not in the directory; ${why} cannot be checked`,
    fix: `run ferry aws collect again, or save the AWS CLI output as ${file}`,
  };
}
