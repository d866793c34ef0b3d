/**
 * The audit CLI reads the platform's environment (issue 9, item 13): `npm run audit -- --rpc <url> --database
 * <url>`, the documented synopsis, with USDC_ADDRESS, TREASURY_ADDRESS and CONFIRMATIONS set as for the
 * platform and no API running anywhere, audits; so does a bare `npm run audit` with everything in the
 * environment, and with everything in a .env file. Options override the environment.
 *
 * Real parts: anvil with the test token, two real payments to the treasury, a fresh PostgreSQL database with
 * the API's schema in which the API's own crediting service credited the first payment (the audit never
 * reads the indexer, so no Ponder). The CLI runs as a real process (`node scripts/src/audit.ts`).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrm, migrateUp, type Orm } from '@chainmeter/api/db/orm';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, mineBlocks, startAnvil } from '@chainmeter/testkit/anvil';
import { findFreePort } from '@chainmeter/testkit/ports';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc, mintUsdc, transferUsdc } from '@chainmeter/testkit/token';
import { type Address, createPublicClient, type Hash, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditTreasuryTransfers } from './credit-from-chain.ts';

const AUDIT_CLI = fileURLToPath(new URL('../audit.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** Every variable the audit reads from the platform's environment: none leaks in from the test runner. */
const AUDIT_VARIABLES = [
  'RPC_URL',
  'CHAIN_ID',
  'USDC_ADDRESS',
  'TREASURY_ADDRESS',
  'CONFIRMATIONS',
  'DATABASE_URL',
  'PORT',
];

let anvil: Anvil;
let database: TestDatabase;
let orm: Orm;
let token: Address;
let scratch: string;
/** A port nothing listens on: the API origin the audit would ask (PORT), so no API can answer. */
let deadPort: number;
let credited: Hash;
let uncredited: Hash;
const treasury = devAccounts.treasury.address;
const payer = devAccounts.payers[0] as (typeof devAccounts.payers)[number];

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a real child process, with exactly `env` for the platform's variables. */
function runAudit(args: string[], env: Record<string, string>): Promise<Cli> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !AUDIT_VARIABLES.includes(name)),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AUDIT_CLI, '--quiet', '--format', 'json', ...args],
      { cwd: ROOT, env: { ...inherited, PORT: String(deadPort), ...env }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

interface JsonReport {
  consistent: boolean;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
  summary: { transfersOnChain: number; transfersCredited: number; transfersNotYetDue: number };
  discrepancies: { kind: string; txHash: string | null }[];
}

function report(cli: Cli): JsonReport {
  if (cli.code !== 0 && cli.code !== 1) throw new Error(`audit exited ${cli.code}: ${cli.stderr}`);
  return JSON.parse(cli.stdout) as JsonReport;
}

beforeAll(async () => {
  anvil = await startAnvil();
  token = await deployTestUsdc(anvil.rpcUrl);
  database = await createTestDatabase('cm_audit_env');
  orm = await createOrm({ databaseUrl: database.url });
  await migrateUp(orm);
  scratch = mkdtempSync(path.join(tmpdir(), 'chainmeter-audit-env-'));
  deadPort = await findFreePort();

  // Two payments (anvil automines: one block each), then 2 more blocks: the second payment ends with
  // 2 confirmations (head - its block = 2), the first with 3.
  await mintUsdc(anvil.rpcUrl, token, payer.address, 5_000_000n);
  credited = (await transferUsdc(anvil.rpcUrl, token, payer, treasury, 1_500_000n)).txHash;
  uncredited = (await transferUsdc(anvil.rpcUrl, token, payer, treasury, 700_000n)).txHash;
  await mineBlocks(anvil.rpcUrl, 2);

  // The platform credited the first payment (its own crediting service, from the chain's log).
  const client = createPublicClient({ transport: http(anvil.rpcUrl) });
  const head = await client.getBlockNumber();
  const onChain = await creditTreasuryTransfers(orm.em, client, {
    chainId: 31337,
    token,
    treasury,
    head,
    only: (transfer) => transfer.txHash === credited.toLowerCase(),
  });
  expect(onChain.map((transfer) => transfer.value)).toEqual([1_500_000n, 700_000n]);
}, 120_000);

afterAll(async () => {
  await orm?.close(true);
  await database?.drop();
  await anvil?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the audit CLI reads the platform environment', () => {
  it('audits `--rpc <url> --database <url>` with USDC_ADDRESS, TREASURY_ADDRESS and CONFIRMATIONS from the environment, no API running', async () => {
    const cli = await runAudit(['--rpc', anvil.rpcUrl, '--database', database.url], {
      USDC_ADDRESS: token,
      TREASURY_ADDRESS: treasury,
      // The second payment has 2 confirmations: with 3 required it is not due yet, so nothing is missing.
      CONFIRMATIONS: '3',
    });
    expect(cli.code, cli.stderr).toBe(0);
    const audited = report(cli);
    expect(audited.consistent).toBe(true);
    expect(audited.tokenAddress).toBe(token);
    expect(audited.treasuryAddress).toBe(treasury);
    expect(audited.confirmations).toBe(3);
    expect(audited.summary).toMatchObject({
      transfersOnChain: 2,
      transfersCredited: 1,
      transfersNotYetDue: 1,
    });
  });

  it('takes everything from the environment (RPC_URL and DATABASE_URL too): a bare `npm run audit`', async () => {
    const cli = await runAudit([], {
      RPC_URL: anvil.rpcUrl,
      DATABASE_URL: database.url,
      CHAIN_ID: '31337',
      USDC_ADDRESS: token,
      TREASURY_ADDRESS: treasury,
      CONFIRMATIONS: '3',
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(report(cli).summary.transfersCredited).toBe(1);
  });

  it('lets options override the environment: --confirmations 2 makes the uncredited payment due', async () => {
    const cli = await runAudit(['--rpc', anvil.rpcUrl, '--database', database.url, '--confirmations', '2'], {
      USDC_ADDRESS: token,
      TREASURY_ADDRESS: treasury,
      CONFIRMATIONS: '3',
    });
    expect(cli.code).toBe(1);
    expect(report(cli).discrepancies.map((d) => [d.kind, d.txHash?.toLowerCase()])).toEqual([
      ['TRANSFER_NOT_CREDITED', uncredited.toLowerCase()],
    ]);
  });

  it('reads a .env file, under the process environment', async () => {
    const envFile = path.join(scratch, '.env');
    writeFileSync(
      envFile,
      [
        '# as for npm start',
        `RPC_URL=${anvil.rpcUrl}`,
        `DATABASE_URL=${database.url}`,
        `USDC_ADDRESS=${token}`,
        `TREASURY_ADDRESS=${treasury}`,
        'CONFIRMATIONS=2',
        '',
      ].join('\n'),
    );
    const fromFile = await runAudit(['--dotenv', envFile], {});
    expect(fromFile.code, fromFile.stderr).toBe(1);
    expect(report(fromFile).confirmations).toBe(2);
    // The process environment wins over the file, as with npm start.
    const overridden = await runAudit(['--dotenv', envFile], { CONFIRMATIONS: '3' });
    expect(overridden.code, overridden.stderr).toBe(0);
    expect(report(overridden).confirmations).toBe(3);
  });

  it('refuses a wrong environment with exit 2 and the variable named, never a stack trace', async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [
        { USDC_ADDRESS: 'not-an-address', TREASURY_ADDRESS: treasury },
        [],
        /USDC_ADDRESS: must be an address/,
      ],
      [{ CONFIRMATIONS: 'many' }, [], /CONFIRMATIONS/],
      [
        { USDC_ADDRESS: token, TREASURY_ADDRESS: treasury, CHAIN_ID: '8453' },
        ['--rpc', anvil.rpcUrl, '--database', database.url],
        /the RPC serves chain 31337, but CHAIN_ID is 8453/,
      ],
      [{}, ['--dotenv', path.join(scratch, 'missing.env')], /cannot read the env file/],
      // Without the addresses and without an API, it says what to set.
      [{}, ['--rpc', anvil.rpcUrl, '--database', database.url], /set USDC_ADDRESS and TREASURY_ADDRESS/],
    ];
    for (const [env, args, message] of cases) {
      const cli = await runAudit(args, env);
      expect(cli.code, JSON.stringify(env)).toBe(2);
      expect(cli.stderr).toMatch(message);
      expect(cli.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
