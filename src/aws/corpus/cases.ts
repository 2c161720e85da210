/**
 * The fixture corpus: the reference setup and realistic misconfigurations,
 * each as a mutation of a fresh reference copy with the exact findings it
 * must produce (written by hand from the AWS semantics, not from the checker).
 */
import type { FixtureCase } from "./case-types.ts";
import { OK_CASES } from "./cases-ok.ts";
import { NETWORK_CASES } from "./cases-network.ts";
import { SERVICE_CASES } from "./cases-services.ts";

export { DEFAULT_ARGS, type CaseArgs, type ExpectedFinding, type FixtureCase } from "./case-types.ts";

export const CASES: FixtureCase[] = [...OK_CASES, ...NETWORK_CASES, ...SERVICE_CASES];
