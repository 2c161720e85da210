/**
 * The point-in-time policy file (`ferry replicator run --pit-policy <json>`)
 * and its schema, apart from the policy's rules (snapshots-policy.ts) so that
 * the running replicator loads the schema library only to read a file.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { FerryError } from "../lib/errors.ts";

export const pitPolicyRuleSchema = z.object({
  ruleID: z.number().int().nonnegative(),
  units: z.enum(["MINUTE", "HOUR", "DAY"]),
  interval: z.number().int().positive(),
  retentionDuration: z.number().int().positive(),
  enabled: z.boolean().default(true),
});
export const pitPolicySchema = z.array(pitPolicyRuleSchema).max(10);

export type PitPolicyRule = z.infer<typeof pitPolicyRuleSchema>;

/** Reads and checks a policy file: a list of rules, or `{ "pitPolicy": [...] }` as DRS writes it. */
export async function readPitPolicyFile(path: string): Promise<PitPolicyRule[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new FerryError(
      "INVALID_PIT_POLICY",
      `cannot read the point-in-time policy ${path}: ${(err as Error).message}`,
    );
  }
  const list =
    raw && typeof raw === "object" && "pitPolicy" in raw ? (raw as { pitPolicy: unknown }).pitPolicy : raw;
  const parsed = pitPolicySchema.safeParse(list);
  if (!parsed.success) {
    throw new FerryError(
      "INVALID_PIT_POLICY",
      `${path} is not a point-in-time policy: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")} — expected [{"ruleID":1,"units":"MINUTE","interval":10,"retentionDuration":60,"enabled":true}, …]`,
    );
  }
  return parsed.data;
}
