/**
 * What a check produces: per flow, every blocker found, each with the rule
 * that found it, a Reachability-Analyzer-style explanation code, the resource
 * IDs involved, what was found and the change that opens the flow.
 */
export const FLOW_IDS = ["F1", "F2", "F3", "F4", "F5", "F6", "F7"] as const;
export type FlowId = (typeof FLOW_IDS)[number];

export const FLOW_TITLES: Record<FlowId, string> = {
  F1: "source → S3 interface endpoint, tcp/443 (installer download)",
  F2: "source → mgn interface endpoint, tcp/443 (registration, control)",
  F3: "source name resolution (hosts lines or inbound resolver)",
  F4: "replication server → mgn endpoint, tcp/443",
  F5: "replication server → ec2 endpoint, tcp/443",
  F6: "replication server → S3 gateway endpoint, tcp/443",
  F7: "source → replication server, tcp/1500, and the return path",
};

export interface Finding {
  /** The checker rule: TOPO-01, EP-01, F1/F2, F3-DNS, TPL-01, F7, … */
  rule: string;
  /** Explanation code in the style of VPC Reachability Analyzer. */
  code: string;
  /** Resource IDs involved, most specific first. */
  resources: string[];
  /** What the configuration holds now. */
  found: string;
  /** The change that opens the flow, as an AWS CLI command where one exists. */
  fix: string;
}

export interface FlowResult {
  flow: FlowId;
  ok: boolean;
  findings: Finding[];
}

/** Values the operator needs on the source, derived from the endpoints. */
export interface Derived {
  s3Endpoint: string | null;
  installerUrl: string | null;
  endpoint: string | null;
  hostsLines: string[];
}

/** The resources each diagram node stands for (for the HTML report). */
export interface Topology {
  source: string;
  mgn: string | null;
  ec2: string | null;
  s3Interface: string | null;
  s3Gateway: string | null;
  resolver: string | null;
  /** Template and per-server configuration ids the virtual replication servers come from. */
  replicationServers: string[];
}

export interface CheckReport {
  region: string;
  stagingVpcId: string | null;
  topology: Topology;
  flows: FlowResult[];
  derived: Derived;
  /** Assumptions the checker made (default group used, …); not blockers. */
  notes: string[];
}

/** Collects findings per flow, dropping exact duplicates (one blocker seen through two configurations). */
export class FindingSink {
  readonly #byFlow = new Map<FlowId, Finding[]>();

  add(flows: FlowId | readonly FlowId[], finding: Finding): void {
    for (const flow of typeof flows === "string" ? [flows] : flows) {
      const list = this.#byFlow.get(flow) ?? [];
      const key = JSON.stringify(finding);
      if (!list.some((f) => JSON.stringify(f) === key)) list.push(finding);
      this.#byFlow.set(flow, list);
    }
  }

  addAll(flows: FlowId | readonly FlowId[], findings: readonly Finding[]): void {
    for (const f of findings) this.add(flows, f);
  }

  results(): FlowResult[] {
    return FLOW_IDS.map((flow) => {
      const findings = this.#byFlow.get(flow) ?? [];
      return { flow, ok: findings.length === 0, findings };
    });
  }
}
