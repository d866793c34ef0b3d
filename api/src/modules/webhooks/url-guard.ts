/**
 * Where a webhook may be sent (server-side request forgery): https only, to a host whose every address is
 * public. Private, loopback, link-local (cloud metadata), shared, multicast and documentation ranges are
 * refused, in IPv4 and IPv6 (IPv4-mapped IPv6 is checked as the IPv4 it carries; any other IPv6 address
 * outside global unicast, 2000::/3, is refused, however it is spelled). The check runs when an
 * endpoint is created and again when each request connects (`guardedLookup`): a host that resolved to a
 * public address then may resolve to 127.0.0.1 now (DNS rebinding), and the connection uses exactly the
 * addresses that were checked. `WEBHOOK_ALLOW_PRIVATE_URLS` (the devnet's default) turns all of it off and
 * allows http.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export const MAX_WEBHOOK_URL_LENGTH = 2_048;

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
// Inside global unicast (2000::/3, the only IPv6 space a public host is given; everything else is refused
// before this list is read: ::/8 with loopback and the IPv4-compatible and -translated forms, 64:ff9b::/96
// NAT64, 100::/64, unique local, link-local, multicast).
for (const [network, prefix] of [
  ['2001::', 23], // IETF protocol assignments: Teredo (2001::/32, embeds an IPv4 address), benchmarking, ORCHID
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds any IPv4 address
  ['3fff::', 20], // documentation
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

/**
 * The eight 16-bit groups of an IPv6 literal (`isIP(address) === 6`), whatever its spelling: `::` anywhere,
 * leading zeros, a trailing dotted IPv4, a zone (`%eth0`, dropped). The ranges below are checked on these
 * numbers, not on the text: `::127.0.0.1`, `::7f00:1` and `0::7f00:1` are one address.
 */
function ipv6Groups(address: string): number[] {
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}

/** True when `address` (an IP literal) is one a webhook may be sent to. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked.check(address, 'ipv4');
  if (family !== 6) return false;
  const groups = ipv6Groups(address);
  const embedded = () => {
    const [high = 0, low = 0] = groups.slice(6);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  };
  const zeros = (n: number) => groups.slice(0, n).every((group) => group === 0);
  // IPv4-mapped (::ffff:0:0/96): the IPv4 address it carries is the one reached.
  if (zeros(5) && groups[5] === 0xffff) return isPublicAddress(embedded());
  // Outside global unicast (2000::/3): IPv4-compatible (::/96) and IPv4-translated (::ffff:0:0:0/96) forms,
  // whatever IPv4 address they carry, ::/8's other reserved space (::1:0:0:0), NAT64 and every local scope.
  if ((groups[0] ?? 0) >> 13 !== 0b001) return false;
  return !blocked.check(groups.map((group) => group.toString(16)).join(':'), 'ipv6');
}

/** Why a URL is refused as a webhook target; null when it is fine (not counting its addresses). */
export function urlProblem(raw: string, allowPrivate: boolean): string | null {
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) return `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) {
    return allowPrivate ? 'must be an http or https URL' : 'must be an https URL';
  }
  if (url.username || url.password) return 'must not carry credentials (user:password@)';
  if (!url.hostname) return 'has no host';
  return null;
}

/** The host of `url` as DNS and `isIP` know it (IPv6 literals without their brackets). */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

export class WebhookAddressError extends Error {
  override name = 'WebhookAddressError';
}

/**
 * Every address of `host`, refused (`WebhookAddressError`) unless each one is public. An IP literal is
 * checked as it is, without DNS.
 */
export async function resolvePublicAddresses(host: string): Promise<LookupAddress[]> {
  const family = isIP(host);
  const addresses: LookupAddress[] =
    family === 0
      ? await dns.lookup(host, { all: true, verbatim: true }).catch((error: NodeJS.ErrnoException) => {
          throw new WebhookAddressError(`${host} does not resolve (${error.code ?? error.message})`);
        })
      : [{ address: host, family }];
  if (addresses.length === 0) throw new WebhookAddressError(`${host} does not resolve`);
  const refused = addresses.find((entry) => !isPublicAddress(entry.address));
  if (refused) {
    throw new WebhookAddressError(`${host} resolves to ${refused.address}, a private or reserved address`);
  }
  return addresses;
}

/**
 * A `lookup` for `http.request` that connects only to checked addresses: the resolution the connection
 * uses is the one that was checked, so DNS cannot answer differently between the check and the connect.
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  resolvePublicAddresses(hostname).then(
    (addresses) => {
      if (options.all) callback(null, addresses);
      else {
        const first = addresses[0] as LookupAddress;
        callback(null, first.address, first.family);
      }
    },
    (error: Error) => callback(error as NodeJS.ErrnoException, '', 0),
  );
};
