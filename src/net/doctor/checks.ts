/**
 * A flow as the doctor checks it: a list of checks run in the order an
 * operator meets them (resolve, TCP, TLS, …), stopping at the first that
 * fails, and the finding that sums them up. Turning the failures into
 * findings waits until every flow has run, because one cause can only be
 * seen across flows (every staging endpoint timing out = the return route).
 */
import type { FlowFailure, FlowRole } from "../../model/flow-classify.ts";
import { findingFor } from "../../model/flow-classify.ts";
import type { FlowFinding, FlowId } from "../../model/flows.ts";

export interface CheckOutcome {
  check: string;
  ok: boolean;
  observed: string;
  failure?: FlowFailure;
}

export interface FlowRun {
  flow: FlowId;
  role: FlowRole;
  checks: CheckOutcome[];
  /** Not checked, and why (a flow before it failed, or it does not apply yet). */
  skipped?: string;
  /** Skipped because of a failure elsewhere: then it counts as failing. */
  blockedBy?: FlowId;
}

/** A finding with the checks behind it (the JSON output keeps them). */
export type DoctorFinding = FlowFinding & {
  skipped?: boolean;
  checks: { check: string; ok: boolean; observed: string }[];
};

export function newRun(flow: FlowId, role: FlowRole): FlowRun {
  return { flow, role, checks: [] };
}

export function passed(run: FlowRun, check: string, observed: string): void {
  run.checks.push({ check, ok: true, observed });
}

export function failed(run: FlowRun, check: string, failure: FlowFailure, observed = ""): void {
  run.checks.push({ check, ok: false, observed, failure });
}

export function hasFailed(run: FlowRun): boolean {
  return run.checks.some((c) => !c.ok);
}

const TIMEOUTS = new Set(["ETIMEDOUT"]);

/**
 * The findings of all runs. `side` is the host the doctor runs on;
 * `localAddress` its address toward the staging network (for the fixes).
 */
export function summarize(
  runs: FlowRun[],
  side: "source" | "replicator",
  localAddress?: string,
): DoctorFinding[] {
  // Every TCP attempt into the staging network timed out (at least two endpoints): the common part is the way back.
  const connects = runs.flatMap((r) => r.checks.filter((c) => c.check === "tcp"));
  const timedOut = connects.filter((c) => c.failure?.check === "connect" && TIMEOUTS.has(c.failure.error));
  const targets = new Set(timedOut.map((c) => (c.failure as { address: string }).address));
  const stagingAllTimedOut = targets.size >= 2 && timedOut.length === connects.length;
  return runs.map((run): DoctorFinding => {
    const checks = run.checks.map(({ check, ok, observed }) => ({ check, ok, observed }));
    const bad = run.checks.find((c) => !c.ok);
    if (!bad?.failure) {
      if (run.skipped !== undefined) {
        return {
          flow: run.flow,
          ok: run.blockedBy === undefined,
          skipped: true,
          observed: `not checked: ${run.skipped}`,
          cause: run.blockedBy ? `blocked by ${run.blockedBy}` : "",
          fix: run.blockedBy ? `fix ${run.blockedBy} first` : "",
          code: run.blockedBy ? "BLOCKED" : "",
          checks,
        };
      }
      return {
        flow: run.flow,
        ok: true,
        observed: checks.map((c) => c.observed).join("; "),
        cause: "",
        fix: "",
        code: "",
        checks,
      };
    }
    let failure = bad.failure;
    if (failure.check === "connect" && TIMEOUTS.has(failure.error) && stagingAllTimedOut) {
      failure = { ...failure, stagingAllTimedOut: true };
    }
    const finding = findingFor(
      { flow: run.flow, role: run.role, side, ...(localAddress ? { localAddress } : {}) },
      failure,
    );
    bad.observed ||= finding.observed;
    return { ...finding, checks: run.checks.map(({ check, ok, observed }) => ({ check, ok, observed })) };
  });
}
