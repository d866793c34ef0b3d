import { describe, expect, it } from 'vitest';
import { parseTransfersQuery, parseWindowQuery } from './query-params.ts';

describe('transfers query', () => {
  it('reads the cursor, toBlock and limit exactly', () => {
    expect(parseTransfersQuery({})).toEqual({
      ok: true,
      value: { after: undefined, toBlock: undefined, limit: 1000 },
    });
    expect(
      parseTransfersQuery({
        afterBlock: '18446744073709551615',
        afterLogIndex: '3',
        toBlock: '9',
        limit: '5000',
      }),
    ).toEqual({
      ok: true,
      value: { after: { blockNumber: 18446744073709551615n, logIndex: 3 }, toBlock: 9n, limit: 5000 },
    });
    expect(parseTransfersQuery({ afterBlock: '7' })).toEqual({
      ok: true,
      value: { after: { blockNumber: 7n, logIndex: undefined }, toBlock: undefined, limit: 1000 },
    });
  });

  it('refuses what is not a plain non-negative integer, and says which parameter', () => {
    for (const [query, field] of [
      [{ afterBlock: '-1' }, 'afterBlock'],
      [{ afterBlock: '0x10' }, 'afterBlock'],
      [{ afterBlock: ' 1' }, 'afterBlock'],
      [{ toBlock: '1.0' }, 'toBlock'],
      [{ limit: '0' }, 'limit'],
      [{ limit: '5001' }, 'limit'],
      [{ afterLogIndex: '1' }, 'afterLogIndex'],
      [{ cursor: '1' }, 'query'],
    ] as const) {
      const result = parseTransfersQuery(query);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toContain(field);
    }
  });
});

describe('window query', () => {
  it('needs fromBlock', () => {
    expect(parseWindowQuery({ fromBlock: '12' })).toEqual({
      ok: true,
      value: { fromBlock: 12n, limit: 5000 },
    });
    expect(parseWindowQuery({}).ok).toBe(false);
    expect(parseWindowQuery({ fromBlock: '' }).ok).toBe(false);
  });
});
