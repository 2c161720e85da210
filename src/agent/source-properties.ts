/**
 * What the agent tells the control plane about its machine at registration
 * (MGN's `sourceProperties`): host names, network interfaces, disks, CPUs,
 * memory and the OS. Read from the running system; nothing here identifies
 * the server (that is the stable identity of identity.ts).
 */
import { readFile } from "node:fs/promises";
import { cpus, hostname, networkInterfaces, totalmem } from "node:os";
import type { SourceProperties } from "../model/mgn-shapes.gen.ts";

async function osName(): Promise<string> {
  try {
    const text = await readFile("/etc/os-release", "utf8");
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    if (m?.[1]) return m[1].slice(0, 256);
  } catch {
    // no os-release: fall through to the kernel's name
  }
  return `Linux ${(await readFile("/proc/sys/kernel/osrelease", "utf8").catch(() => "")).trim()}`.trim();
}

/** Facts about this machine, shaped as MGN's SourceProperties. */
export async function collectSourceProperties(
  disks: { deviceName: string; bytes: number }[],
): Promise<SourceProperties> {
  const host = hostname();
  const nics: NonNullable<SourceProperties["networkInterfaces"]> = [];
  for (const [, addrs] of Object.entries(networkInterfaces())) {
    const external = (addrs ?? []).filter((a) => !a.internal);
    if (external.length === 0) continue;
    nics.push({
      macAddress: external[0]!.mac,
      ips: external.map((a) => a.address).slice(0, 32),
      isPrimary: nics.length === 0,
    });
  }
  const byModel = new Map<string, number>();
  for (const c of cpus()) byModel.set(c.model, (byModel.get(c.model) ?? 0) + 1);
  return {
    identificationHints: { hostname: host.split(".")[0]!.slice(0, 256), fqdn: host.slice(0, 256) },
    networkInterfaces: nics.slice(0, 32),
    disks: disks.map((d) => ({ deviceName: d.deviceName.slice(0, 256), bytes: d.bytes })),
    cpus: [...byModel]
      .slice(0, 256)
      .map(([modelName, cores]) => ({ cores, modelName: modelName.slice(0, 256) })),
    ramBytes: totalmem(),
    os: { fullString: await osName() },
  };
}
