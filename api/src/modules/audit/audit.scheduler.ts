/**
 * The audit on a schedule (`AUDIT_INTERVAL_MS`, off by default): the same server-side run as the
 * `auditReport` query (treasury Transfer logs from the RPC, records from the database), every interval,
 * so `chainmeter_audit_discrepancies` and `chainmeter_audit_last_run_timestamp_seconds` stay current and
 * the audit alert can fire without anybody asking for a report. Each replica that has it on runs its
 * own: turn it on for one replica, or budget the RPC calls for all. A run that fails is logged and
 * leaves the metrics as they were (the last-run timestamp then ages, which an alert can watch).
 */
import type { PublicClient } from 'viem';
import type { Orm } from '../../db/orm.ts';
import type { ApiConfig } from '../../env.ts';
import type { AppMetrics } from '../../observability/metrics.ts';
import { runAuditReport } from './audit.service.ts';

export interface AuditSchedulerOptions {
  orm: Orm;
  chain: PublicClient;
  config: Pick<ApiConfig, 'chainId' | 'usdcAddress' | 'treasuryAddress' | 'confirmations'>;
  metrics: Pick<AppMetrics, 'recordAudit'>;
  logger: { info(object: object, message: string): void; error(object: object, message: string): void };
  intervalMs: number;
  fromBlock: bigint;
}

export interface AuditScheduler {
  /** Resolves once a run in progress has finished; no run starts after. */
  stop(): Promise<void>;
}

/** Runs the audit now, then every `intervalMs` (a run never overlaps the previous one). */
export function startAuditScheduler(options: AuditSchedulerOptions): AuditScheduler {
  const { orm, chain, config, metrics, logger, intervalMs, fromBlock } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let stopped = false;

  async function run(): Promise<void> {
    const started = performance.now();
    try {
      const report = await runAuditReport(orm.em.fork(), { chain, config, fromBlock });
      metrics.recordAudit(report.counts);
      const line = {
        head: report.head.toString(),
        fromBlock: fromBlock.toString(),
        counts: report.counts,
        durationMs: Math.round(performance.now() - started),
      };
      if (report.consistent) logger.info(line, 'scheduled audit: consistent');
      else logger.error(line, 'scheduled audit: DISCREPANCIES found (run `npm run audit` for the details)');
    } catch (error) {
      logger.error({ err: error }, 'scheduled audit could not run; the audit metrics keep their last values');
    }
  }

  function tick(): void {
    if (stopped) return;
    running = run().finally(() => {
      running = null;
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  }

  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
