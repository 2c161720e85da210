/**
 * Static name resolution (`--resolve NAME=IP`), the equivalent of a hosts
 * line: the installer hands the same pairs to curl and to the agent, so a
 * source whose DNS cannot see a private endpoint's name still reaches it by
 * that name (and TLS still checks the certificate against the name).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP } from "node:net";
import { FerryError } from "./errors.ts";

/** Host name (lower case) → IP address. */
export type StaticHosts = ReadonlyMap<string, string>;

/** Parses `NAME=IP` pairs; a repeated name keeps the last IP, as curl does. */
export function parseResolve(specs: readonly string[]): StaticHosts {
  const hosts = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = eq > 0 ? spec.slice(0, eq).trim().toLowerCase() : "";
    const ip = eq > 0 ? spec.slice(eq + 1).trim() : "";
    if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(name) || isIP(ip) === 0) {
      throw new FerryError(
        "BAD_RESOLVE",
        `--resolve "${spec}" is not NAME=IP (for example bucket.s3.local=10.0.0.5): give a host name and an IPv4 or IPv6 address`,
      );
    }
    hosts.set(name, ip);
  }
  return hosts;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for `net`/`tls`/`https` options: names in `hosts` answer with
 * their IP, every other name goes to the system resolver.
 */
export function staticLookup(hosts: StaticHosts) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    const ip = hosts.get(hostname.toLowerCase());
    if (ip === undefined) {
      dnsLookup(hostname, options, callback as never);
      return;
    }
    const family = isIP(ip);
    if (options.all) callback(null, [{ address: ip, family }]);
    else callback(null, ip, family);
  };
}
