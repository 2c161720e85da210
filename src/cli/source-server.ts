/** `ferry source-server list|describe`: the source servers as DescribeSourceServers reports them. */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";
import { writeJson, writeLine } from "./context.ts";
import type { StoreFlags } from "./server.ts";
import { addStoreOptions } from "./server.ts";
import { createControlPlane } from "../control/index.ts";
import { toSourceServer } from "../model/source-server.ts";
import type { SourceServer } from "../model/mgn-shapes.gen.ts";
import { silentLogger } from "../lib/log.ts";
import { FerryError } from "../lib/errors.ts";

async function loadServers(o: StoreFlags): Promise<SourceServer[]> {
  const cp = await createControlPlane({
    dataDir: o.dataDir,
    region: o.region,
    logger: silentLogger,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
  });
  try {
    const now = cp.options.now();
    const opts = { agentNotSeenAfterMs: cp.options.agentNotSeenAfterSeconds * 1000 };
    // Ferry's addition: the network flow the agent last reported failing (docs/private-network.md).
    return (await cp.store.sourceServers.list()).map((r) => ({
      ...toSourceServer(r, now, opts),
      ...(r.agent.failedFlow ? { failedFlow: r.agent.failedFlow } : {}),
    }));
  } finally {
    await cp.close();
  }
}

export function registerSourceServer(program: Command, ctx: CliContext): void {
  const noun = program.command("source-server").description("Show source servers (state, replication, lag)");
  addStoreOptions(
    noun
      .command("list")
      .description("List source servers")
      .option("--json", "print MGN SourceServer objects"),
    ctx,
  ).action(async (o: StoreFlags & { json?: boolean }) => {
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
    noun.command("describe").description("Show one source server as JSON").argument("<source-server-id>"),
    ctx,
  ).action(async (id: string, o: StoreFlags) => {
    const s = (await loadServers(o)).find((x) => x.sourceServerID === id);
    if (!s)
      throw new FerryError(
        "SOURCE_SERVER_NOT_FOUND",
        `Source server ${id} does not exist. List them with 'ferry source-server list'.`,
      );
    writeJson(ctx.stdout, s);
  });
}
