/**
 * `ferry doctor --server`: the flows as the control plane sees them, from
 * its store — replicators whose heartbeats stopped (F4), agents not seen
 * (F2), and the flow each agent last reported failing (usually F7).
 */
import { agentNotSeenFlow, findingFor } from "../../model/flow-classify.ts";
import type { FlowId } from "../../model/flows.ts";
import type { ReplicatorRecord } from "../../model/replicator.ts";
import type { SourceServerRecord } from "../../model/source-server.ts";
import type { DoctorFinding } from "./checks.ts";

export interface ServerDoctorInput {
  replicators: ReplicatorRecord[];
  sourceServers: SourceServerRecord[];
  now: number;
  /** An agent's last report older than this counts as missing (the server's --agent-not-seen-after). */
  notSeenAfterMs: number;
  /** A replicator's last heartbeat older than this counts as missing (the server's --replicator-not-seen-after). */
  replicatorNotSeenAfterMs: number;
}

function ok(flow: FlowId, observed: string): DoctorFinding {
  return { flow, ok: true, observed, cause: "", fix: "", code: "", checks: [] };
}

export function runServerDoctor(i: ServerDoctorInput): DoctorFinding[] {
  const out: DoctorFinding[] = [];
  const active = i.sourceServers.filter((s) => !s.isArchived && s.replication.control !== "DISCONNECTED");
  const lateAgents = active.filter(
    (s) => i.now - (s.agent.lastSeenAt ?? s.agent.registeredAt) > i.notSeenAfterMs,
  );
  for (const s of lateAgents) {
    const f = agentNotSeenFlow(s.sourceServerID, s.agent, i.now, i.notSeenAfterMs);
    out.push({
      flow: f.flow,
      ok: false,
      observed: f.observed,
      cause: f.cause,
      fix: f.fix,
      ...(f.code ? { code: f.code } : {}),
      checks: [],
    });
  }
  if (!lateAgents.length) out.push(ok("F2", `${active.length} agent(s) reporting`));

  const late = i.replicators.filter((r) => i.now - r.lastSeenAt > i.replicatorNotSeenAfterMs);
  for (const r of late) {
    const f = findingFor(
      { flow: "F4", role: "service", side: "replicator" },
      {
        check: "heartbeat",
        who: `replicator ${r.name} (${r.replicatorId})`,
        ageSeconds: (i.now - r.lastSeenAt) / 1000,
        lastSeenAt: new Date(r.lastSeenAt).toISOString(),
        thresholdSeconds: i.replicatorNotSeenAfterMs / 1000,
      },
    );
    out.push({ ...f, checks: [] });
  }
  if (!late.length) out.push(ok("F4", `${i.replicators.length} replicator(s) sending heartbeats`));

  const failing = active.filter((s) => s.agent.failedFlow && !lateAgents.includes(s));
  for (const s of failing) {
    const f = s.agent.failedFlow!;
    out.push({
      flow: f.flow,
      ok: false,
      observed: `${s.sourceServerID} (reported ${f.at}): ${f.observed}`,
      cause: f.cause,
      fix: f.fix,
      ...(f.code ? { code: f.code } : {}),
      checks: [],
    });
  }
  if (!failing.some((s) => s.agent.failedFlow?.flow === "F7")) {
    out.push(ok("F7", `no agent reports a failing data plane`));
  }
  return out;
}
