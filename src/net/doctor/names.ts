/**
 * F3: every endpoint name resolves (through `--resolve`, the hosts file or
 * DNS), and to a private address — a public answer means the hosts line is
 * missing and public DNS answered instead.
 */
import type { StaticHosts } from "../../lib/static-resolve.ts";
import { failed, passed, type FlowRun } from "./checks.ts";
import { isPrivateAddress, resolveName } from "./probes.ts";

/** Resolves each name; returns name → the address to use (the first private one). */
export async function checkNames(
  run: FlowRun,
  names: string[],
  hosts: StaticHosts | undefined,
  /** name → the private address it must resolve to, when known. */
  expected: ReadonlyMap<string, string> = new Map(),
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of [...new Set(names)]) {
    const r = await resolveName(name, hosts);
    if (!r.ok) {
      failed(run, "resolve", { check: "resolve", name, error: r.error });
      continue;
    }
    const want = expected.get(name);
    const good = want ? r.addresses.filter((a) => a === want) : r.addresses.filter(isPrivateAddress);
    if (!good.length) {
      failed(run, "resolve", {
        check: "resolve-address",
        name,
        addresses: r.addresses,
        ...(want ? { expected: want } : {}),
      });
      continue;
    }
    out.set(name, good[0]!);
    passed(run, "resolve", `${name} → ${good[0]} (${r.via === "system" ? "hosts file/DNS" : r.via})`);
  }
  return out;
}
