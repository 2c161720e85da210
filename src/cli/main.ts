#!/usr/bin/env node
/**
 * The `ferry` command line: noun-verb subcommands, one file per noun. The
 * commands stay thin; the work lives in the components. This file is the one
 * place that turns errors into exit codes and messages.
 */
import { Command, CommanderError } from "commander";
import { FerryError } from "../lib/errors.ts";
import { type CliContext, writeJson, writeLine } from "./context.ts";
import { registerDemo } from "./demo.ts";
import { registerReplicator } from "./replicator.ts";
import { registerAgent } from "./agent.ts";
import { registerAws } from "./aws.ts";
import { registerServer } from "./server.ts";
import { registerAccessKey } from "./access-key.ts";

export const VERSION = "0.1.0";

export function createProgram(ctx: CliContext): Command {
  const program = new Command("ferry")
    .description(
      "Ferry: self-hosted server migration. Continuous block replication over a private network, MGN-compatible API.",
    )
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });
  registerDemo(program, ctx);
  registerReplicator(program, ctx);
  registerAgent(program, ctx);
  registerAws(program, ctx);
  registerServer(program, ctx);
  registerAccessKey(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const program = createProgram(ctx);
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exit code 0; usage errors with 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof FerryError && err.kind === "user") {
      if (json) writeJson(ctx.stdout, { error: err.toJSON() });
      writeLine(ctx.stderr, `ferry: ${err.message}`);
      return 1;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    if (json) writeJson(ctx.stdout, { error: { code: "INTERNAL", message: e.message } });
    writeLine(ctx.stderr, `ferry: internal error: ${e.stack ?? e.message}`);
    return 70;
  }
}

const isEntry =
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/src/cli/main.ts");
if (isEntry) {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
    signal: controller.signal,
  });
  process.exitCode = code;
}
