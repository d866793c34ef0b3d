/**
 * Who the client is, for the per-IP rate limits: the socket's peer, or what a trusted reverse proxy says in
 * `X-Forwarded-For`. Only proxies listed in `TRUSTED_PROXIES` are believed (docs/security.md).
 */
import { BlockList, isIP } from 'node:net';

/**
 * The reverse proxies (load balancers) whose `X-Forwarded-For` is believed: `TRUSTED_PROXIES`, a list of
 * CIDRs (IPv4 and IPv6; a bare address is a /32 or /128). Matching is node:net's `BlockList`; an
 * IPv4-mapped IPv6 peer (`::ffff:10.0.0.5`) is matched as the IPv4 address it is.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  /** @throws TypeError naming the first entry that is not a CIDR (env.ts validates them first). */
  constructor(cidrs: readonly string[]) {
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      if (!cidr) throw new TypeError(`"${text}" is not a CIDR such as 10.0.0.0/8 or fd00::/8`);
      this.#list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
    this.#empty = cidrs.length === 0;
  }

  has(ip: string): boolean {
    if (this.#empty) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    return this.#list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host); null when malformed. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [rawAddress = '', rawPrefix, ...rest] = text.trim().split('/');
  if (rest.length > 0) return null;
  const address = normalizeIp(rawAddress);
  const family = isIP(address);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  if (rawPrefix !== undefined && !/^\d{1,3}$/.test(rawPrefix)) return null;
  const prefix = rawPrefix === undefined ? max : Number(rawPrefix);
  if (prefix > max) return null;
  return { address, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The client's IP. The socket's peer, unless that peer is one of `trustedProxies`: then `X-Forwarded-For`
 * is read from the right (each proxy appends the address it received the request from), skipping the
 * entries that are trusted proxies themselves, and the first entry that is not one is the client.
 * Entries further left were written by the client and are never believed. A peer that is not a trusted
 * proxy is the client whatever its `X-Forwarded-For` says.
 */
export function clientIpOf(
  socketAddress: string | undefined,
  forwardedFor: string | null | undefined,
  trustedProxies: TrustedProxies,
): string | null {
  if (!socketAddress) return null;
  let client = normalizeIp(socketAddress);
  if (!forwardedFor || !trustedProxies.has(client)) return client;
  const hops = forwardedFor.split(',');
  for (let index = hops.length - 1; index >= 0; index--) {
    const hop = normalizeIp((hops[index] as string).trim());
    // Not an address (garbage, a port, a name): whoever handed it over is the last one we can name.
    if (isIP(hop) === 0) return client;
    client = hop;
    if (!trustedProxies.has(hop)) return client;
  }
  return client;
}

function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice('::ffff:'.length)) === 4 ? ip.slice('::ffff:'.length) : ip;
}
