import './scalars.ts';
import '../modules/accounts/accounts.schema.ts';
import '../modules/alerts/alerts.schema.ts';
import '../modules/apikeys/apikeys.schema.ts';
import '../modules/audit/audit.schema.ts';
import '../modules/auth/auth.schema.ts';
import '../modules/deposits/deposits.schema.ts';
import '../modules/ledger/ledger.schema.ts';
import '../modules/metering/metering.schema.ts';
import '../modules/operations/operations.schema.ts';
import '../modules/solvency/solvency.schema.ts';
import '../modules/webhooks/webhooks.schema.ts';
import '../modules/relayer/relayer.schema.ts';
import '../modules/topup/topup.schema.ts';
import { builder } from './builder.ts';

export const schema = builder.toSchema({ sortSchema: true });
