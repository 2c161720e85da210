/**
 * IPv4 addresses and CIDR blocks as AWS route tables, security groups and
 * network ACLs use them: containment, overlap and prefix length.
 */
import { FerryError } from "../../lib/errors.ts";

/** A parsed IPv4 CIDR block: network address as an unsigned 32-bit number and its prefix length. */
export interface Cidr {
  readonly network: number;
  readonly prefix: number;
  readonly text: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted IPv4 address; undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const m = IPV4.exec(text.trim());
  if (!m) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/n` (or a bare address as /32); undefined when it is not IPv4 CIDR. */
export function tryParseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.trim().split("/");
  if (addr === undefined || extra !== undefined) return undefined;
  const ip = parseIpv4(addr);
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  const network = (ip & maskOf(prefix)) >>> 0;
  return { network, prefix, text: `${formatIpv4(network)}/${prefix}` };
}

/** Parses a CIDR or throws a user error naming `what` (a file and field). */
export function parseCidr(text: string, what = "CIDR"): Cidr {
  const cidr = tryParseCidr(text);
  if (!cidr) {
    throw new FerryError(
      "AWS_BAD_CIDR",
      `${what}: "${text}" is not an IPv4 CIDR block; use the form 10.1.0.0/16`,
      {
        details: { value: text },
      },
    );
  }
  return cidr;
}

/** Number of addresses in the block. */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** The last address of the block. */
export function cidrLast(c: Cidr): number {
  return c.network + cidrSize(c) - 1;
}

/** True when every address of `inner` lies in `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return outer.prefix <= inner.prefix && (inner.network & maskOf(outer.prefix)) >>> 0 === outer.network;
}

/** True when the two blocks share at least one address. */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** The host address `offset` inside the block (offset 4 is the first an AWS subnet hands out). */
export function cidrHost(c: Cidr, offset: number): string {
  return formatIpv4(c.network + offset);
}
