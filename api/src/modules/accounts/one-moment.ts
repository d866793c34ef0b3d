/**
 * One response, one moment of the signed-in account. `me` serves the account as the credential's lookup read
 * it at the start of the request (no statement of its own), and its deposits, ledger or usage are read after,
 * each by its own statement: a credit committed in between would show as CREDITED next to a balance without
 * it. So when `me` served that early row to a selection that reads the account by more than one statement,
 * the account is read again once the operation has run: if its ledger moved meanwhile (`ledger_seq`, which
 * every credit, charge, reversal and adjustment advances in the transaction that writes it) or its debt did,
 * the operation runs again on the account as read then, at most {@link RUNS} times in all. A response whose
 * account did not move between its first and its last read is of one moment: what it shows of the records was
 * written before the balance it shows, and the other way round. A deposit's confirmations, which move no
 * money, may still be of a later moment than the rest.
 */
import { type FragmentDefinitionNode, getOperationAST, Kind, type SelectionSetNode } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { AppServices, GraphQLContext } from '../../context.ts';
import { sqlFor } from '../../db/sql.ts';
import { readAccountRecord } from './accounts.store.ts';

/** How many times an operation runs at most; a last run on an account still moving is answered as it is. */
const RUNS = 3;

/** The fields of `Account` that never change: they can be of any moment. */
const FIXED_FIELDS = new Set(['__typename', 'id', 'walletAddress']);
/** The fields of `Account` served from the row read with the credential. */
const ROW_FIELDS = new Set(['balance', 'debt', 'lowBalanceThreshold']);

/**
 * Adds to `reads` what this selection of the signed-in account (the `me` field answering as `responseKey`)
 * reads of it: its row's figures, and each field that reads its records (deposits, ledger...: each its own
 * statement, aliases apart). Fragments are followed; directives are not read (a skipped field counts). More
 * than one read in an operation: its response is checked to be of one moment.
 */
export function collectAccountReads(
  reads: Set<string>,
  responseKey: string,
  selectionSet: SelectionSetNode,
  fragments: Record<string, FragmentDefinitionNode>,
): void {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (ROW_FIELDS.has(name)) reads.add('the row');
      else if (!FIXED_FIELDS.has(name)) reads.add(`${responseKey}.${selection.alias?.value ?? name}`);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      collectAccountReads(reads, responseKey, selection.selectionSet, fragments);
    } else {
      const fragment = fragments[selection.name.value];
      if (fragment) collectAccountReads(reads, responseKey, fragment.selectionSet, fragments);
    }
  }
}

/** Queries run again while the signed-in account moves under them (see the top of this file). */
export function accountFiguresOfOneMoment(services: AppServices): Plugin<GraphQLContext> {
  const query = sqlFor(services.orm).query;
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      if (getOperationAST(args.document, args.operationName)?.operation !== 'query') return;
      setExecuteFn(async (executionArgs) => {
        const context = executionArgs.contextValue as GraphQLContext;
        for (let run = 1; ; run++) {
          const result = await executeFn(executionArgs);
          const served = context.viewerAccount;
          if (context.viewerAccountReads.size < 2 || !served || run === RUNS || isAsyncIterable(result)) {
            return result;
          }
          const now = await readAccountRecord(query, served.id);
          if (!now || (now.view.ledgerSeq === served.ledgerSeq && now.view.debt === served.debt))
            return result;
          context.readAgainFrom(now);
        }
      });
    },
  };
}
