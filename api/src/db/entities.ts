import { Account } from '../modules/accounts/accounts.entity.ts';
import { ApiKey } from '../modules/apikeys/apikeys.entity.ts';
import { Session, SiweNonce } from '../modules/auth/auth.entity.ts';
import { CreditingCursor, Deposit } from '../modules/deposits/deposits.entity.ts';
import { LedgerEntry } from '../modules/ledger/ledger.entity.ts';
import { UsageRecord } from '../modules/metering/metering.entity.ts';

/** Every entity the ORM knows. Add a module's entities here. */
export const entities = [
  Account,
  LedgerEntry,
  Deposit,
  CreditingCursor,
  SiweNonce,
  Session,
  ApiKey,
  UsageRecord,
];
