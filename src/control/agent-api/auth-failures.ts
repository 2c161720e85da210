/**
 * An agent whose signed requests the control plane refuses cannot report
 * why: the control plane records it instead. A request from a known agent
 * key refused as expired (its X-Amz-Date more than the window from the
 * server's clock) shows on that source server as MGN's
 * FAILED_TO_AUTHENTICATE_WITH_SERVICE with flow F2 and the clock skew,
 * until the agent's next accepted report replaces it.
 */
import type { OpContext } from "../api/context.ts";
import { findingFor } from "../../model/flow-classify.ts";
import { formatFinding } from "../../model/flows.ts";
import { isoDateTime } from "../../model/duration.ts";

/** `Credential=AKID/…` of an Authorization header. */
function accessKeyOf(authorization: string | null): string | undefined {
  return /Credential=([A-Z0-9]{16,128})\//.exec(authorization ?? "")?.[1];
}

function parseAmzDate(v: string | null): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v ?? "");
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : undefined;
}

/** Called with a request the signature check refused; never throws. */
export async function noteRefusedSignature(
  base: Omit<OpContext, "caller">,
  headers: { get(name: string): string | null },
  err: unknown,
): Promise<void> {
  try {
    if (!/Signature expired/.test(err instanceof Error ? err.message : "")) return;
    const id = accessKeyOf(headers.get("authorization"));
    const sent = parseAmzDate(headers.get("x-amz-date"));
    if (!id || sent === undefined) return;
    const key = await base.accessKeys.resolve(id);
    const server = key?.row.scope === "agent" ? key.row.sourceServerID : undefined;
    if (!server) return;
    const now = base.now();
    const finding = findingFor(
      { flow: "F2", role: "service", side: "source" },
      { check: "clock", via: "sigv4", skewSeconds: (now - sent) / 1000, serverTime: isoDateTime(now) },
    );
    await base.store.sourceServers.update(server, (r) => {
      const n = structuredClone(r);
      n.agent.error = { error: "FAILED_TO_AUTHENTICATE_WITH_SERVICE", rawError: formatFinding(finding) };
      n.agent.failedFlow = { ...finding, ok: false, at: isoDateTime(now) };
      return n;
    });
  } catch {
    // Best effort: the refusal itself is what the caller gets.
  }
}
