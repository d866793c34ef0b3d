import { formatCredits, type MicroUsd } from '../money.ts';
import { type AuditReport, DISCREPANCY_KINDS } from './audit-types.ts';

const credits = (microUsd: bigint) => formatCredits(microUsd as MicroUsd);
const cell = (value: string | number | bigint | null) =>
  value === null ? '' : String(value).replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The report for people: a summary table, the count of each discrepancy kind, then every discrepancy. */
export function formatAuditMarkdown(report: AuditReport): string {
  const s = report.summary;
  const lines = [
    `# ChainMeter audit: ${report.consistent ? 'consistent' : `${report.discrepancies.length} discrepancies`}`,
    '',
    `Chain ${report.chainId}, token ${report.tokenAddress}, treasury ${report.treasuryAddress}, blocks ${report.fromBlock}..${report.head}, ${report.confirmations} confirmations required.`,
    '',
    '| measure | value |',
    '| --- | --- |',
    `| treasury transfers on chain | ${s.transfersOnChain} |`,
    `| not creditable (zero value, mints, treasury to itself) | ${s.transfersNotCreditable} |`,
    `| due (confirmed) | ${s.transfersDue} |`,
    `| not yet due | ${s.transfersNotYetDue} |`,
    `| credited correctly | ${s.transfersCredited} |`,
    `| accounts | ${s.accounts} |`,
    `| ledger entries | ${s.ledgerEntries} |`,
    `| deposit credits | ${s.depositCredits} |`,
    `| credits before from-block (not matched) | ${s.creditsBeforeFromBlock} |`,
    `| credits after head (next audit) | ${s.creditsAfterHead} |`,
    `| credits reversed after a deep reorg | ${s.creditsReversed} |`,
    `| due on chain (credits) | ${credits(s.totalDue)} |`,
    `| credited (credits) | ${credits(s.totalCredited)} |`,
    `| total balance (credits) | ${credits(s.totalBalance)} |`,
    `| owed after deep reorgs (credits) | ${credits(s.totalDebt)} |`,
    `| operator adjustments (entries) | ${s.operatorAdjustments} |`,
    `| operator adjustments (credits) | ${credits(s.totalOperatorAdjusted)} |`,
    `| paid calls (x402) checked against their settlement | ${s.paidCallsChecked} |`,
    `| paid calls awaiting their settlement's credit | ${s.paidCallsAwaiting} |`,
    `| paid calls served and never paid | ${s.paidCallsUnpaid} |`,
    '',
    `## Solvency at block ${report.solvency.asOfBlock}`,
    '',
    '| figure | credits |',
    '| --- | --- |',
    `| treasury balance on chain | ${report.solvency.treasuryBalance === null ? 'not read' : credits(report.solvency.treasuryBalance)} |`,
    `| outstanding credits (sum of balances) | ${credits(report.solvency.outstandingCredits)} |`,
    `| held by calls in flight (part of it) | ${report.solvency.heldCredits === null ? 'not recorded' : credits(report.solvency.heldCredits)} |`,
    `| credited deposits | ${credits(report.solvency.creditedDeposits)} |`,
    `| charged usage | ${credits(report.solvency.chargedUsage)} |`,
    `| operator adjustments | ${credits(report.solvency.operatorAdjustments)} |`,
    `| owed after deep reorgs | ${credits(report.solvency.accountDebt)} |`,
    '',
    '| discrepancy | count |',
    '| --- | --- |',
    ...DISCREPANCY_KINDS.map((kind) => `| ${kind} | ${report.counts[kind]} |`),
  ];
  if (report.reversedCredits.length > 0) {
    lines.push(
      '',
      '## Credits reversed after a reorg deeper than the confirmations (not discrepancies)',
      '',
      '| account | wallet | transaction | log | block | entry | credits | still owed |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...report.reversedCredits.map(
        (r) =>
          `| ${r.accountId} | ${cell(r.walletAddress)} | ${r.txHash} | ${r.logIndex} | ${r.blockNumber} | ${r.seq} | ${credits(r.amount)} | ${credits(r.owed)} |`,
      ),
    );
  }
  if (report.unpaidCalls.length > 0) {
    lines.push(
      '',
      '## Calls paid per request that were served and never paid (not discrepancies)',
      '',
      '| usage | account | payer | scheme | credits owed |',
      '| --- | --- | --- | --- | --- |',
      ...report.unpaidCalls.map(
        (u) => `| ${u.usageId} | ${u.accountId} | ${u.payer} | ${u.scheme} | ${credits(u.userPrice)} |`,
      ),
    );
  }
  if (report.discrepancies.length > 0) {
    lines.push(
      '',
      '## Discrepancies',
      '',
      '| kind | account | wallet | transaction | log | block | entry | expected | actual | detail |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...report.discrepancies.map(
        (d) =>
          `| ${d.kind} | ${cell(d.accountId)} | ${cell(d.walletAddress)} | ${cell(d.txHash)} | ${cell(d.logIndex)} | ${cell(d.blockNumber)} | ${cell(d.seq)} | ${cell(d.expected)} | ${cell(d.actual)} | ${cell(d.message)} |`,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
