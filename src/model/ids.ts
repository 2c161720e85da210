/**
 * MGN's identifier formats: a prefix and 17 characters of [0-9a-zA-Z]
 * (`s-…` source servers, `rct-…` replication templates, `mgnjob-…` jobs).
 * Ferry draws them from lowercase hex, as AWS does, from a CSPRNG.
 */
import { randomBytes } from "node:crypto";

export const ID_PATTERNS = {
  sourceServer: /^s-[0-9a-zA-Z]{17}$/,
  replicationConfigurationTemplate: /^rct-[0-9a-zA-Z]{17}$/,
  job: /^mgnjob-[0-9a-zA-Z]{17}$/,
  replicator: /^i-[0-9a-zA-Z]{17}$/,
} as const;

function suffix(): string {
  return randomBytes(9).toString("hex").slice(0, 17);
}

export function newSourceServerId(): string {
  return `s-${suffix()}`;
}

export function newReplicationConfigurationTemplateId(): string {
  return `rct-${suffix()}`;
}

export function newJobId(): string {
  return `mgnjob-${suffix()}`;
}

/** The ARN kinds MGN uses in `arn:aws:mgn:<region>:<account>:<kind>/<id>`. */
export type ResourceKind = "source-server" | "replication-configuration-template" | "job";

export function resourceArn(region: string, accountId: string, kind: ResourceKind, id: string): string {
  return `arn:aws:mgn:${region}:${accountId}:${kind}/${id}`;
}

/** Splits an MGN ARN; undefined when it is not one of ours. */
export function parseResourceArn(
  arn: string,
): { region: string; accountId: string; kind: ResourceKind; id: string } | undefined {
  const m =
    /^arn:aws:mgn:([a-z0-9-]+):(\d{12}):(source-server|replication-configuration-template|job)\/([A-Za-z0-9-]+)$/.exec(
      arn,
    );
  if (!m) return undefined;
  return { region: m[1]!, accountId: m[2]!, kind: m[3] as ResourceKind, id: m[4]! };
}
