import { describe, expect, it } from 'vitest';
import { namedParameters } from './named-parameters.ts';

describe('namedParameters', () => {
  it('numbers the names in order and lays the values out in that order', () => {
    const p = namedParameters(['ids', 'now', 'limit']);
    expect(p.$).toEqual({ ids: '$1', now: '$2', limit: '$3' });
    expect(p.values({ limit: 5, ids: ['a'], now: 'n' })).toEqual([['a'], 'n', 5]);
  });

  it('refuses a name given twice', () => {
    expect(() => namedParameters(['a', 'b', 'a'])).toThrow(/named twice/);
  });
});
