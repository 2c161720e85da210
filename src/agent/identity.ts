/**
 * A source server's identity. MGN derives it from a MAC address, so a new NIC
 * forces a full re-replication; Ferry derives it from the machine id
 * (/etc/machine-id, stable across NIC changes and reboots) and keeps it in the
 * agent's state directory, so it survives even a regenerated machine id.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { systemErrorCode } from "../lib/errors.ts";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** `s-` followed by 17 characters of [0-9a-zA-Z], as MGN's source server ids. */
export function sourceServerIdFrom(seed: Buffer): string {
  const digest = createHash("sha256").update("ferry-source-server:").update(seed).digest();
  let n = BigInt(`0x${digest.toString("hex")}`);
  let out = "";
  for (let i = 0; i < 17; i++) {
    out += ALPHABET[Number(n % 62n)];
    n /= 62n;
  }
  return `s-${out}`;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim() || undefined;
  } catch (err) {
    if (systemErrorCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

/** The id kept in `stateDir`, else one derived from the machine id (or random), then kept. */
export async function loadOrCreateSourceServerId(
  stateDir: string,
  machineIdPath = "/etc/machine-id",
): Promise<string> {
  const file = join(stateDir, "source-server-id");
  const kept = await readOptional(file);
  if (kept) return kept;
  const machineId = await readOptional(machineIdPath);
  const id = sourceServerIdFrom(machineId ? Buffer.from(machineId) : randomBytes(32));
  await mkdir(stateDir, { recursive: true });
  await writeFile(file, `${id}\n`, { mode: 0o600 });
  return id;
}
