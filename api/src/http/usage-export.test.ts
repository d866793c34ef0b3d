import { describe, expect, it } from 'vitest';
import type { UsageView } from '../modules/metering/metering.service.ts';
import { usageExportStream } from './usage-export.ts';

const row = (model: string): UsageView => ({
  id: '00000000-0000-4000-8000-000000000001',
  requestId: 'req_1',
  model,
  promptTokens: 5,
  completionTokens: 1,
  providerCost: 7n,
  userPrice: 14n,
  billingStatus: 'BILLED',
  apiKeyId: null,
  latencyMs: 3,
  createdAt: new Date('2026-12-04T00:00:00.000Z'),
  flags: [],
});

async function* pages(rows: UsageView[]): AsyncGenerator<UsageView[]> {
  yield rows;
}

/** The `model` cell of each data line of the CSV export of rows with these models. */
async function modelCells(models: string[]): Promise<string[]> {
  const csv = await new Response(usageExportStream(pages(models.map(row)), 'csv')).text();
  // Model is the fourth column; none of these cells holds a comma, a quote or a line break.
  return csv
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(',')[3] as string);
}

describe('the CSV export against formula injection', () => {
  it('neutralises every cell a spreadsheet would run as a formula, a leading minus and digit included', async () => {
    // "-1+1" and "-2+cmd|' /C calc'!A0" are formulas to Excel and LibreOffice, like "=1+1".
    expect(await modelCells(['=1+1', '+1+1', '@SUM(1)', '-1+1', "-2+cmd|' /C calc'!A0", '-x'])).toEqual([
      "'=1+1",
      "'+1+1",
      "'@SUM(1)",
      "'-1+1",
      "'-2+cmd|' /C calc'!A0",
      "'-x",
    ]);
  });

  it('leaves numbers and ordinary text as they are', async () => {
    expect(await modelCells(['-5', '-0.25', '12', 'gpt-4o-mini', 'a-1+1'])).toEqual([
      '-5',
      '-0.25',
      '12',
      'gpt-4o-mini',
      'a-1+1',
    ]);
  });
});
