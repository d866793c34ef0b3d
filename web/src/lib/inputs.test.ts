import { describe, expect, it } from 'vitest';
import { readPositiveCredits, tooLong } from './inputs.ts';

describe('form inputs', () => {
  it('reads a positive amount of credits, trimmed, or says why not in the words of its field', () => {
    expect(readPositiveCredits(' 5 ', 'The threshold')).toEqual({ ok: true, credits: '5' });
    expect(readPositiveCredits('0.001', 'The threshold')).toEqual({ ok: true, credits: '0.001' });
    const format = 'The spend limit is a number of credits with at most 3 decimals.';
    for (const text of ['', 'abc', '1e3', '1,000', '0.0001']) {
      expect(readPositiveCredits(text, 'The spend limit')).toEqual({ ok: false, reason: format });
    }
    for (const text of ['0', '-1', '0.000']) {
      expect(readPositiveCredits(text, 'The spend limit')).toEqual({
        ok: false,
        reason: 'The spend limit must be more than zero.',
      });
    }
    // 2^63 - 1 = 9,223,372,036,854,775,807 micro-USD is the most the API holds: 9,223,372,036,854,775.807
    // credits. One milli-credit more is refused.
    expect(readPositiveCredits('9223372036854775.807', 'The threshold')).toEqual({
      ok: true,
      credits: '9223372036854775.807',
    });
    expect(readPositiveCredits('9223372036854775.808', 'The threshold')).toEqual({
      ok: false,
      reason: 'The threshold is too large: at most 9,223,372,036,854,775.807 credits.',
    });
  });

  it('says a value is too long, with both lengths, and nothing at the limit', () => {
    expect(tooLong('x'.repeat(100), 100, 'The name')).toBeNull();
    expect(tooLong('x'.repeat(2_049), 2_048, 'The URL')).toBe(
      'The URL is at most 2,048 characters; this one has 2,049.',
    );
  });
});
