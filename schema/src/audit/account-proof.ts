/**
 * A per-account proof: one account's whole ledger with its hash chain and each deposit's chain reference,
 * as a JSON document. Anyone can check it against the chain without trusting the platform:
 * `npm run audit -- --proof <file> --rpc <url>` recomputes the chain and balance and re-reads every
 * transfer from that wallet to the treasury (`checkAudit` over that one account).
 */
import {
  type AuditAccountJson,
  type AuditLedgerEntryJson,
  accountFromJson,
  accountToJson,
  ledgerEntryFromJson,
  ledgerEntryToJson,
} from './audit-json.ts';
import type { AuditAccount, AuditLedgerEntry } from './audit-types.ts';
import { AuditFormatError } from './record-fields.ts';

export const ACCOUNT_PROOF_VERSION = 'chainmeter-account-proof-v1';

export interface AccountProof {
  chainId: number;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
  generatedAt: Date;
  account: AuditAccount;
  /** Oldest first. */
  entries: AuditLedgerEntry[];
}

export interface AccountProofJson {
  version: typeof ACCOUNT_PROOF_VERSION;
  chainId: number;
  tokenAddress: string;
  treasuryAddress: string;
  confirmations: number;
  generatedAt: string;
  account: AuditAccountJson;
  entries: AuditLedgerEntryJson[];
}

export function accountProofToJson(proof: AccountProof): AccountProofJson {
  return {
    version: ACCOUNT_PROOF_VERSION,
    chainId: proof.chainId,
    tokenAddress: proof.tokenAddress,
    treasuryAddress: proof.treasuryAddress,
    confirmations: proof.confirmations,
    generatedAt: proof.generatedAt.toISOString(),
    account: accountToJson(proof.account),
    entries: proof.entries.map(ledgerEntryToJson),
  };
}

/** Parses a proof document (already JSON-decoded); throws `AuditFormatError` saying what is wrong. */
export function accountProofFromJson(value: unknown): AccountProof {
  if (typeof value !== 'object' || value === null) throw new AuditFormatError('proof: not a JSON object');
  const record = value as Record<string, unknown>;
  if (record.version !== ACCOUNT_PROOF_VERSION) {
    throw new AuditFormatError(`proof: version must be "${ACCOUNT_PROOF_VERSION}"`);
  }
  const { chainId, tokenAddress, treasuryAddress, confirmations, generatedAt, entries } = record;
  if (typeof chainId !== 'number' || !Number.isSafeInteger(chainId)) {
    throw new AuditFormatError('proof: "chainId" must be an integer');
  }
  if (typeof tokenAddress !== 'string' || typeof treasuryAddress !== 'string') {
    throw new AuditFormatError('proof: "tokenAddress" and "treasuryAddress" must be strings');
  }
  if (typeof confirmations !== 'number' || !Number.isSafeInteger(confirmations) || confirmations < 0) {
    throw new AuditFormatError('proof: "confirmations" must be a non-negative integer');
  }
  if (!Array.isArray(entries)) throw new AuditFormatError('proof: "entries" must be an array');
  const account = accountFromJson(record.account, 'proof.account');
  const parsed = entries.map((entry, index) => ledgerEntryFromJson(entry, `proof.entries[${index}]`));
  for (const entry of parsed) {
    if (entry.accountId !== account.accountId) {
      throw new AuditFormatError(`proof: entry ${entry.seq} belongs to another account (${entry.accountId})`);
    }
  }
  return {
    chainId,
    tokenAddress,
    treasuryAddress,
    confirmations,
    generatedAt: new Date(typeof generatedAt === 'string' ? generatedAt : 0),
    account,
    entries: parsed,
  };
}
