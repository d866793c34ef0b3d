import { formatCredits, type MicroUsd, MoneyFormatError, parseCredits } from '@chainmeter/schema';
import { type ValueNode, valueFromASTUntyped } from 'graphql';
import { type Address, getAddress, type Hex, isAddress, isHex } from 'viem';
import { INT8_MAX } from '../db/cursor.ts';
import { badInput } from '../errors.ts';
import { builder } from './builder.ts';
import { formatDateTime, parseDateTime } from './date-time.ts';

/** Micro-USD amounts are stored in bigint columns: no larger amount exists. */
const MAX_CREDITS = formatCredits(INT8_MAX as MicroUsd);
const UINT256_LIMIT = 2n ** 256n;

// Inputs arrive as strings; a malformed one is the caller's mistake (BAD_USER_INPUT), never a 500.
function expectString(value: unknown, scalar: string): string {
  if (typeof value !== 'string') throw badInput(`${scalar} must be a string`);
  return value;
}

/**
 * A literal in a document is parsed exactly as the same value sent as a variable. Written out with one
 * parameter: graphql-js's default `parseLiteral` takes the variables too, and graphql-jit (which compiles
 * queries) then prints a warning to stderr for every document with such a literal.
 */
function fromLiteral<T>(parseValue: (value: unknown) => T): (ast: ValueNode) => T {
  return (ast) => parseValue(valueFromASTUntyped(ast));
}

function parseCreditsInput(value: unknown) {
  let amount: MicroUsd;
  try {
    amount = parseCredits(expectString(value, 'Credits'));
  } catch (error) {
    if (error instanceof MoneyFormatError) throw badInput(`Credits: ${error.message}`);
    throw error;
  }
  // Every amount is stored as micro-USD in a bigint column: a larger one is no amount anyone holds.
  if (amount > INT8_MAX || amount < -INT8_MAX) {
    throw badInput(`Credits: "${value}" is out of range (at most ${MAX_CREDITS} in absolute value)`);
  }
  return amount;
}

builder.scalarType('Credits', {
  description:
    'An exact amount of credits as a decimal string with up to 3 fractional digits (1 credit = $0.001 = 1,000 micro-USD), e.g. "1500", "0.042", "-2.5".',
  serialize: (value) => formatCredits(value as MicroUsd),
  parseValue: parseCreditsInput,
  parseLiteral: fromLiteral(parseCreditsInput),
});

function parseAddressInput(value: unknown) {
  const text = expectString(value, 'Address');
  if (!isAddress(text, { strict: false })) throw badInput(`"${text}" is not an address (0x + 40 hex digits)`);
  return getAddress(text);
}

/**
 * Checksummed addresses by the text they were serialized from. `getAddress` costs about 0.7 us even for an
 * address it has seen (viem's two LRU maps, keyed by new strings), and a ledger page serializes the sender of
 * every deposit: most often the same few wallets. A plain Map, emptied when full: an LRU's bookkeeping on
 * every hit cost more than the misses it would save.
 */
const checksummed = new Map<string, Address>();
const CHECKSUMMED_MAX = 4096;

function serializeAddress(value: string): Address {
  let address = checksummed.get(value);
  if (address === undefined) {
    address = getAddress(value);
    if (checksummed.size >= CHECKSUMMED_MAX) checksummed.clear();
    checksummed.set(value, address);
  }
  return address;
}

builder.scalarType('Address', {
  description: 'An EVM address: 0x followed by 40 hex digits; any case in, EIP-55 checksummed out.',
  serialize: serializeAddress,
  parseValue: parseAddressInput,
  parseLiteral: fromLiteral(parseAddressInput),
});

function parseHashInput(value: unknown) {
  const text = expectString(value, 'Hash');
  if (!isHex(text, { strict: true }) || text.length !== 66) throw badInput(`"${text}" is not a 32-byte hash`);
  return text.toLowerCase() as Hex;
}

builder.scalarType('Hash', {
  description: 'A 32-byte hash: 0x followed by 64 hex digits.',
  serialize: (value) => value,
  parseValue: parseHashInput,
  parseLiteral: fromLiteral(parseHashInput),
});

function parseBigIntInput(value: unknown) {
  const text = expectString(value, 'BigInt');
  if (!/^-?\d{1,78}$/.test(text)) throw badInput(`"${text}" is not an integer of at most 78 digits`);
  const integer = BigInt(text);
  // Token amounts and block numbers are uint256 at most on chain.
  if (integer >= UINT256_LIMIT || integer <= -UINT256_LIMIT) throw badInput(`"${text}" is out of range`);
  return integer;
}

builder.scalarType('BigInt', {
  description: 'An arbitrary-size integer as a decimal string.',
  serialize: (value) => value.toString(),
  parseValue: parseBigIntInput,
  parseLiteral: fromLiteral(parseBigIntInput),
});

function parseDateTimeInput(value: unknown) {
  const text = expectString(value, 'DateTime');
  const date = parseDateTime(text);
  if (!date) {
    throw badInput(
      `"${text}" is not an ISO-8601 date-time with an offset, years 0001 to 9999 (e.g. "2026-11-24T05:45:12Z")`,
    );
  }
  return date;
}

builder.scalarType('DateTime', {
  description: 'An ISO-8601 date and time in UTC, e.g. "2026-11-24T05:45:12.000Z".',
  serialize: formatDateTime,
  parseValue: parseDateTimeInput,
  parseLiteral: fromLiteral(parseDateTimeInput),
});
