/**
 * The operator role and the reason rule, without a database: who counts as an operator (sessions of the
 * listed wallets, never API keys) and what a reason may be. The actions themselves are tested against the
 * real platform in `api/test/operator-actions.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../env.ts';
import { expectedCodeOf } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { isOperator } from '../auth/auth.service.ts';
import { assertOperator, checkedReason, REASON_MAX_LENGTH } from './operations.service.ts';

const OPERATOR = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';
const base = {
  USDC_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
};

const viewer = (operator: boolean | undefined, kind: 'session' | 'apiKey' = 'session'): Viewer => ({
  accountId: 'a',
  walletAddress: OPERATOR,
  role: 'user',
  ...(operator === undefined ? {} : { operator }),
  credential: kind === 'session' ? { kind, sessionId: 's' } : { kind, apiKeyId: 'k' },
});

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return expectedCodeOf(error);
  }
  return null;
};

describe('OPERATOR_ADDRESSES', () => {
  it('lists wallets in any case, checksummed; none by default; a bad one refuses the start', () => {
    expect(loadConfig(base).operatorAddresses).toEqual([]);
    const config = loadConfig({ ...base, OPERATOR_ADDRESSES: ` ${OPERATOR.toLowerCase()} ,` });
    expect(config.operatorAddresses).toEqual([OPERATOR]);
    expect(isOperator(config, OPERATOR.toUpperCase().replace('0X', '0x'))).toBe(true);
    expect(isOperator(config, base.TREASURY_ADDRESS)).toBe(false);
    expect(() => loadConfig({ ...base, OPERATOR_ADDRESSES: `${OPERATOR},0x123` })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, OPERATOR_ADDRESSES: '0x123' })).toThrow(/"0x123" is not an address/);
  });

  it('SOLVENCY_SNAPSHOT_MS: an hour by default, 0 turns it off, below a second refused', () => {
    expect(loadConfig(base).solvencySnapshotMs).toBe(3_600_000);
    expect(loadConfig({ ...base, SOLVENCY_SNAPSHOT_MS: '0' }).solvencySnapshotMs).toBe(0);
    expect(() => loadConfig({ ...base, SOLVENCY_SNAPSHOT_MS: '10' })).toThrow(/at least 1000/);
  });
});

describe('assertOperator', () => {
  it('lets an operator session through and refuses everyone else with the right code', () => {
    expect(assertOperator(viewer(true)).walletAddress).toBe(OPERATOR);
    expect(codeOf(() => assertOperator(null))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => assertOperator(viewer(false)))).toBe('FORBIDDEN');
    expect(codeOf(() => assertOperator(viewer(undefined)))).toBe('FORBIDDEN');
    expect(codeOf(() => assertOperator(viewer(false, 'apiKey')))).toBe('FORBIDDEN');
  });
});

describe('checkedReason', () => {
  it('trims, and refuses an empty, overlong or multi-line reason', () => {
    expect(checkedReason('  refund  ')).toBe('refund');
    expect(checkedReason('é'.repeat(REASON_MAX_LENGTH))).toHaveLength(REASON_MAX_LENGTH);
    // Counted in characters, not UTF-16 units: 500 emoji are 500 characters.
    expect([...checkedReason('🙂'.repeat(REASON_MAX_LENGTH))]).toHaveLength(REASON_MAX_LENGTH);
    for (const bad of ['', '   ', 'x'.repeat(REASON_MAX_LENGTH + 1), 'a\nb', 'tab\there', 'nul\u0000']) {
      expect(
        codeOf(() => checkedReason(bad)),
        JSON.stringify(bad),
      ).toBe('BAD_USER_INPUT');
    }
  });
});
