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

type Register = (program: Command, ctx: CliContext) => void;

/**
 * Nouns whose modules are heavy to load (the AWS SDK, aws-cdk-lib, the HTTP
 * stack): loaded only when the command line names them, so `ferry agent …`
 * and `ferry --help` start fast. The description shows in the top-level help.
 */
const LAZY_NOUNS: Record<string, { description: string; load: () => Promise<Register> }> = {
  up: {
    description: "run the control plane and a local replicator together (the embedded default)",
    load: async () => (await import("./up.ts")).registerUp,
  },
  server: {
    description: "the control plane: MGN-compatible API over HTTPS",
    load: async () => (await import("./server.ts")).registerServer,
  },
  "access-key": {
    description: "manage access keys for the API (operator, install or replicator scope)",
    load: async () => (await import("./access-key.ts")).registerAccessKey,
  },
  "source-server": {
    description: "show source servers: lifecycle, replication state, lag",
    load: async () => (await import("./source-server.ts")).registerSourceServer,
  },
  release: {
    description: "build the agent package and publish it for ferry-installer-init",
    load: async () => (await import("./release.ts")).registerRelease,
  },
  doctor: {
    description: "check every network flow and name what blocks it",
    load: async () => (await import("./doctor.ts")).registerDoctor,
  },
  aws: {
    description: "plan and check the private-network setup of AWS MGN itself",
    load: async () => (await import("./aws.ts")).registerAws,
  },
  launch: {
    description: "launch settings of a source server (target, image format, …) and launch job logs",
    load: async () => (await import("./launch.ts")).registerLaunch,
  },
  snapshot: {
    description: "point-in-time snapshots of replicated disks: list, verify",
    load: async () => (await import("./snapshot.ts")).registerSnapshot,
  },
  lab: {
    description:
      "the reference private network on this machine (namespaces, rules, services): up, down, status",
    load: async () => (await import("./lab.ts")).registerLab,
  },
};

export const VERSION = "0.1.0";

export async function createProgram(ctx: CliContext, argv: string[] = []): Promise<Command> {
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
  const words = argv.filter((a) => !a.startsWith("-"));
  const wanted = words[0] === "help" ? words[1] : words[0];
  for (const [name, noun] of Object.entries(LAZY_NOUNS)) {
    if (name === wanted) (await noun.load())(program, ctx);
    else program.command(name).description(noun.description);
  }
  return program;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const program = await createProgram(ctx, argv);
  const json = argv.includes("--json");
  try {
    ctx.exitCode = 0;
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode ?? 0;
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
