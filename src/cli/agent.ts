import type { Command } from "commander";
import type { CliContext } from "./context.ts";

export function registerAgent(_program: Command, _ctx: CliContext): void {}
