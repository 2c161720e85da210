/** The shape of a fixture case and the helpers the case tables share. */
import type { FixtureFiles } from "./reference.ts";
import { ID } from "./ids.ts";

/** The source side of a case: what `ferry aws check` gets as flags. */
export interface CaseArgs {
  sourceSubnet?: string;
  sourceCidr?: string;
  sourceGroups?: string[];
  /** Name of the hosts file inside the case directory. */
  sourceHosts?: string;
}

export interface ExpectedFinding {
  flow: string;
  rule: string;
  code: string;
  resources: string[];
}

export interface FixtureCase {
  name: string;
  description: string;
  mutate?: (files: FixtureFiles) => void;
  args?: Partial<CaseArgs> & { noHosts?: boolean };
  hosts?: string;
  expected: ExpectedFinding[];
}

export const DEFAULT_ARGS: CaseArgs = {
  sourceSubnet: ID.srcSubnet,
  sourceGroups: [ID.sgSrc],
  sourceHosts: "source-hosts",
};

export const on = (flows: string[], rule: string, code: string, resources: string[]): ExpectedFinding[] =>
  flows.map((flow) => ({ flow, rule, code, resources }));

export const OLD_PCX = "pcx-0ccc0000000000050";
