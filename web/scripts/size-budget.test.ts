import { ensureWebBuild } from '@chainmeter/testkit/web-build';
import { describe, expect, it } from 'vitest';
import { measureBuild, overBudget } from './size-budget.ts';

describe('web production build', () => {
  it('stays within its gzip size budget', async () => {
    await ensureWebBuild();
    const report = measureBuild();
    expect(report.initialKb).toBeGreaterThan(0);
    expect(overBudget(report)).toEqual([]);
  });
});
