/**
 * `npm run audit -- [options]`: every credit re-derived from the chain and checked against the
 * platform's records (see `npm run audit -- --help` and CONTRACT.md "Audit"). Exit code 0 consistent,
 * 1 discrepancies found, 2 could not run.
 */
import { runAuditCommand } from './audit/run-audit.ts';

const code = await runAuditCommand(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
// Let stdout drain (a large JSON report into a pipe) before exiting.
process.stdout.write('', () => process.exit(code));
