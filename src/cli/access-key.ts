/** `ferry access-key create|list|delete`: the keys that sign API and agent requests. */
import type { Command } from "commander";
import { Option } from "commander";
import type { CliContext } from "./context.ts";
import { writeJson, writeLine } from "./context.ts";
import type { StoreFlags } from "./server.ts";
import { addStoreOptions } from "./server.ts";
import { createControlPlane } from "../control/index.ts";
import type { ControlPlane } from "../control/index.ts";
import { silentLogger } from "../lib/log.ts";

async function withPlane<T>(o: StoreFlags, fn: (cp: ControlPlane) => Promise<T>): Promise<T> {
  const cp = await createControlPlane({
    dataDir: o.dataDir,
    region: o.region,
    logger: silentLogger,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
  });
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}

export function registerAccessKey(program: Command, ctx: CliContext): void {
  const noun = program
    .command("access-key")
    .description(
      "Manage access keys (operator: every API operation; install: may only register agents; replicator: may only register replicators)",
    );

  addStoreOptions(
    noun
      .command("create")
      .description("Create an access key; the secret is shown once")
      .addOption(
        new Option("--scope <scope>", "what the key may do")
          .choices(["operator", "install", "replicator"])
          .default("operator"),
      )
      .option("--description <text>", "a note to recognise the key by", "")
      .option("--json", "print the key as JSON"),
    ctx,
  ).action(
    async (
      o: StoreFlags & { scope: "operator" | "install" | "replicator"; description: string; json?: boolean },
    ) => {
      const key = await withPlane(o, (cp) => cp.accessKeys.create(o.scope, o.description));
      if (o.json) return writeJson(ctx.stdout, key);
      writeLine(ctx.stdout, `Access key ID:     ${key.accessKeyId}`);
      writeLine(ctx.stdout, `Secret access key: ${key.secretAccessKey}`);
      writeLine(ctx.stdout, `Scope:             ${key.scope}`);
      writeLine(ctx.stderr, "The secret is not stored in readable form; keep it now.");
    },
  );

  addStoreOptions(
    noun.command("list").description("List access keys (never their secrets)").option("--json", "print JSON"),
    ctx,
  ).action(async (o: StoreFlags & { json?: boolean }) => {
    const keys = await withPlane(o, (cp) => cp.accessKeys.list());
    if (o.json) return writeJson(ctx.stdout, keys);
    for (const k of keys) {
      writeLine(
        ctx.stdout,
        [k.accessKeyId, k.scope, k.createdAt, k.sourceServerID ?? "-", k.description].join("\t"),
      );
    }
  });

  addStoreOptions(
    noun
      .command("delete")
      .description("Delete an access key; requests signed with it are refused at once")
      .argument("<access-key-id>"),
    ctx,
  ).action(async (id: string, o: StoreFlags) => {
    await withPlane(o, (cp) => cp.accessKeys.delete(id));
    writeLine(ctx.stdout, `Deleted access key ${id}`);
  });
}
