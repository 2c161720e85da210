/** Parsers for option values shared by several commands; each throws a clear user error. */
import { InvalidArgumentError } from "commander";

export function parseHostPort(text: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not HOST or HOST:PORT`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError(`port ${m[3]} is out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

export function parseMbps(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 10000) {
    throw new InvalidArgumentError(`bandwidth must be 0 (unlimited) to 10000 Mbps, got "${text}"`);
  }
  return n;
}

export function parseChoice<T extends string>(choices: readonly T[]): (text: string) => T {
  return (text) => {
    if (!(choices as readonly string[]).includes(text)) {
      throw new InvalidArgumentError(`must be one of ${choices.join(", ")}`);
    }
    return text as T;
  };
}
