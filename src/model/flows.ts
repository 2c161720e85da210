/**
 * The network flows a private-network migration needs, with the ids of
 * ../../docs/private-network.md (the same as for AWS MGN itself), and what
 * a failed flow looks like when the agent or `ferry doctor` reports it. The
 * control plane uses the mapping from MGN's initiation steps and errors to
 * flows to say which path a stuck server is most likely blocked on.
 */
import { z } from "zod";

export const FlowId = z.enum(["F1", "F2", "F3", "F4", "F5", "F6", "F7"]);
export type FlowId = z.infer<typeof FlowId>;

export const FLOW_TITLES: Record<FlowId, string> = {
  F1: "object store from the source (443)",
  F2: "service from the source (443)",
  F3: "name resolution",
  F4: "service from the replicator (443)",
  F5: "compute API from the replicator (443)",
  F6: "object store from the replicator (443)",
  F7: "data plane to the replicator (1500) and its return path",
};

/** One flow's verdict: what was seen, the likely cause in terms of the setup, and the change that fixes it. */
export const FlowFinding = z.object({
  flow: FlowId,
  ok: z.boolean(),
  observed: z.string().max(4000),
  cause: z.string().max(4000),
  fix: z.string().max(4000),
  /** Stable code of the cause (`SG_1500_MISSING`, `HOSTS_LINE_MISSING`, …); "" when ok. */
  code: z.string().max(64).optional(),
});
export type FlowFinding = z.infer<typeof FlowFinding>;

/** A failed flow as the agent last observed it (carried in its report). */
export const ObservedFlowFailure = FlowFinding.extend({
  ok: z.literal(false),
  /** When the agent observed it (ISO 8601). */
  at: z.string().max(64),
});
export type ObservedFlowFailure = z.infer<typeof ObservedFlowFailure>;

/**
 * The flow most likely at fault for an MGN initiation step or data
 * replication error (as `ferry aws check` maps them for AWS MGN).
 */
export function flowForMgnFailure(stepOrError: string): FlowId | undefined {
  const name = stepOrError.replace(/^FAILED_TO_/, "");
  switch (name) {
    case "AUTHENTICATE_WITH_SERVICE":
      return "F4";
    case "DOWNLOAD_REPLICATION_SOFTWARE":
      return "F6";
    case "PAIR_REPLICATION_SERVER_WITH_AGENT":
    case "CONNECT_AGENT_TO_REPLICATION_SERVER":
    case "START_DATA_TRANSFER":
    case "UNSTABLE_NETWORK":
      return "F7";
    case "AGENT_NOT_SEEN":
      return "F2";
    default:
      return undefined;
  }
}

/** The MGN initiation step and data replication error a failed flow shows as, seen from the agent. */
export function mgnFailureForFlow(
  flow: FlowId,
  code = "",
): {
  step:
    | "CONNECT_AGENT_TO_REPLICATION_SERVER"
    | "PAIR_REPLICATION_SERVER_WITH_AGENT"
    | "AUTHENTICATE_WITH_SERVICE";
  error:
    | "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER"
    | "FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT"
    | "FAILED_TO_AUTHENTICATE_WITH_SERVICE";
} {
  if (flow === "F7" && /FINGERPRINT|PAIRING|CERTIFICATE/.test(code)) {
    return {
      step: "PAIR_REPLICATION_SERVER_WITH_AGENT",
      error: "FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT",
    };
  }
  if (flow === "F7") {
    return {
      step: "CONNECT_AGENT_TO_REPLICATION_SERVER",
      error: "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER",
    };
  }
  return { step: "AUTHENTICATE_WITH_SERVICE", error: "FAILED_TO_AUTHENTICATE_WITH_SERVICE" };
}

/** `F7 data plane …: observed — cause. Fix: … [CODE]` — the one line a rawError or a log carries. */
export function formatFinding(f: Pick<FlowFinding, "flow" | "observed" | "cause" | "fix" | "code">): string {
  return `${f.flow} ${FLOW_TITLES[f.flow]}: ${f.observed} — ${f.cause}. Fix: ${f.fix}${f.code ? ` [${f.code}]` : ""}`;
}
