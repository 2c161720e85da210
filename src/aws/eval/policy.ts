/**
 * Just enough IAM policy evaluation for VPC endpoint policies (a JSON string
 * in `PolicyDocument`): an explicit Deny wins, otherwise an Allow is needed.
 * Principal is taken as matching (endpoint policies name `*` in practice) and
 * Conditions as satisfied, so a restrictive condition is never a false alarm.
 */

interface Statement {
  Effect?: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  [key: string]: unknown;
}

export type PolicyVerdict =
  | { allowed: true }
  | {
      allowed: false;
      reason: "no-allow" | "explicit-deny" | "invalid";
      detail: string;
      statements: Statement[];
    };

function list(v: string | string[] | undefined): string[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

/** IAM wildcard match: `*` any run of characters, `?` one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    ignoreCase ? "is" : "s",
  );
  return re.test(value);
}

function matches(st: Statement, action: string, resource: string): boolean {
  const actions = list(st.Action);
  const notActions = list(st.NotAction);
  const actionOk = actions
    ? actions.some((a) => wildcardMatch(a, action, true))
    : notActions
      ? !notActions.some((a) => wildcardMatch(a, action, true))
      : false;
  const resources = list(st.Resource);
  const notResources = list(st.NotResource);
  const resourceOk = resources
    ? resources.some((r) => wildcardMatch(r, resource, false))
    : notResources
      ? !notResources.some((r) => wildcardMatch(r, resource, false))
      : false;
  return actionOk && resourceOk;
}

/** Parses a PolicyDocument; undefined when it is not a policy. */
export function parsePolicy(doc: string): Statement[] | undefined {
  try {
    const parsed = JSON.parse(doc) as { Statement?: Statement | Statement[] };
    if (typeof parsed !== "object" || parsed === null || parsed.Statement === undefined) return undefined;
    return Array.isArray(parsed.Statement) ? parsed.Statement : [parsed.Statement];
  } catch {
    return undefined;
  }
}

/** Does the endpoint policy let `action` on `resource` through? No document means full access. */
export function policyAllows(doc: string | undefined, action: string, resource: string): PolicyVerdict {
  if (doc === undefined || doc.trim() === "") return { allowed: true };
  const statements = parsePolicy(doc);
  if (!statements)
    return {
      allowed: false,
      reason: "invalid",
      detail: "PolicyDocument is not a JSON policy",
      statements: [],
    };
  const denies = statements.filter((s) => s.Effect === "Deny" && matches(s, action, resource));
  if (denies.length > 0) {
    return {
      allowed: false,
      reason: "explicit-deny",
      detail: `a Deny statement matches ${action} on ${resource}`,
      statements: denies,
    };
  }
  if (statements.some((s) => s.Effect === "Allow" && matches(s, action, resource))) return { allowed: true };
  return {
    allowed: false,
    reason: "no-allow",
    detail: `no Allow statement matches ${action} on ${resource}`,
    statements: [],
  };
}

/** A policy document with the denying statements removed and `extra` appended. */
export function amendedPolicy(doc: string | undefined, remove: Statement[], extra: Statement): string {
  const statements = (doc ? parsePolicy(doc) : undefined) ?? [];
  const kept = statements.filter((s) => !remove.some((r) => JSON.stringify(r) === JSON.stringify(s)));
  return JSON.stringify({ Version: "2012-10-17", Statement: [...kept, extra] });
}
