/** `ferry source-server list|describe`: the source servers as DescribeSourceServers reports them. */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";
import { writeJson, writeLine } from "./context.ts";
import type { StoreFlags } from "./server.ts";
import { addStoreOptions } from "./server.ts";
import { toSourceServer } from "../model/source-server.ts";
import { agentNotSeenFlow } from "../model/flow-classify.ts";
import type { SourceServer } from "../model/mgn-shapes.gen.ts";
import { silentLogger } from "../lib/log.ts";
import { FerryError } from "../lib/errors.ts";

type ListFlags = StoreFlags & { agentNotSeenAfter?: string };

function notSeenAfterMs(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new FerryError("USAGE", `--agent-not-seen-after '${text}' must be a positive number of seconds`);
  return n * 1000;
}

async function loadServers(o: ListFlags): Promise<SourceServer[]> {
  // Loaded here, not at the top: the control plane pulls in hono and pg (CLI start-up).
  const { createControlPlane } = await import("../control/index.ts");
  const { readLivenessSettings } = await import("../control/store/settings.ts");
  const cp = await createControlPlane({
    dataDir: o.dataDir,
    region: o.region,
    logger: silentLogger,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
  });
  try {
    const now = cp.options.now();
    // The running server's threshold (written at its start), so this says what the API says.
    const running = (await readLivenessSettings(cp.store)) ?? cp.options;
    const opts = {
      agentNotSeenAfterMs:
        o.agentNotSeenAfter === undefined
          ? running.agentNotSeenAfterSeconds * 1000
          : notSeenAfterMs(o.agentNotSeenAfter),
    };
    // Ferry's addition: the network flow failing (docs/private-network.md) — the one the agent
    // last reported, or F2 when the agent is not seen at all.
    return (await cp.store.sourceServers.list()).map((r) => {
      const s = toSourceServer(r, now, opts);
      const failedFlow =
        s.dataReplicationInfo?.dataReplicationError?.error === "AGENT_NOT_SEEN"
          ? agentNotSeenFlow(r.sourceServerID, r.agent, now, opts.agentNotSeenAfterMs)
          : r.agent.failedFlow;
      return { ...s, ...(failedFlow ? { failedFlow } : {}) };
    });
  } finally {
    await cp.close();
  }
}

const NOT_SEEN_HELP =
  "an agent silent this long shows AGENT_NOT_SEEN (default: what the running server uses, else 60)";

export function registerSourceServer(program: Command, ctx: CliContext): void {
  const noun = program.command("source-server").description("Show source servers (state, replication, lag)");
  addStoreOptions(
    noun
      .command("list")
      .description("List source servers")
      .option("--json", "print MGN SourceServer objects")
      .option("--agent-not-seen-after <seconds>", NOT_SEEN_HELP),
    ctx,
  ).action(async (o: ListFlags & { json?: boolean }) => {
    const servers = await loadServers(o);
    if (o.json) return writeJson(ctx.stdout, servers);
    writeLine(
      ctx.stdout,
      ["SOURCE SERVER", "HOSTNAME", "LIFECYCLE", "REPLICATION", "LAG", "ARCHIVED"].join("\t"),
    );
    for (const s of servers) {
      writeLine(
        ctx.stdout,
        [
          s.sourceServerID,
          s.sourceProperties?.identificationHints?.hostname ?? "-",
          s.lifeCycle?.state ?? "-",
          `${s.dataReplicationInfo?.dataReplicationState ?? "-"}${s.dataReplicationInfo?.dataReplicationError ? ` (${s.dataReplicationInfo.dataReplicationError.error})` : ""}`,
          s.dataReplicationInfo?.lagDuration ?? "-",
          s.isArchived ? "yes" : "no",
        ].join("\t"),
      );
    }
  });
  addStoreOptions(
    noun
      .command("describe")
      .description("Show one source server as JSON")
      .argument("<source-server-id>")
      .option("--agent-not-seen-after <seconds>", NOT_SEEN_HELP),
    ctx,
  ).action(async (id: string, o: ListFlags) => {
    const s = (await loadServers(o)).find((x) => x.sourceServerID === id);
    if (!s)
      throw new FerryError(
        "SOURCE_SERVER_NOT_FOUND",
        `Source server ${id} does not exist. List them with 'ferry source-server list'.`,
      );
    writeJson(ctx.stdout, s);
  });
}
