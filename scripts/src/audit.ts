/**
 * `npm run audit -- [options]`: every credit re-derived from the chain and checked against the
 * platform's records (see `npm run audit -- --help` and docs/api.md "The audit CLI"). It reads the platform's
 * environment (RPC_URL, USDC_ADDRESS, TREASURY_ADDRESS, CONFIRMATIONS, DATABASE_URL, ...) and `.env` first. Exit code 0 consistent,
 * 1 discrepancies found, 2 could not run.
 */
import { runAuditCommand } from './audit/run-audit.ts';
import { auditEnvironment } from './env.ts';

// The platform's environment (and the repository's .env, like `npm start`), then the options.
const code = await runAuditCommand(
  process.argv.slice(2),
  {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  },
  auditEnvironment,
);
// Let stdout drain (a large JSON report into a pipe) before exiting.
process.stdout.write('', () => process.exit(code));
