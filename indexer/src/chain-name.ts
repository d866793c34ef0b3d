/** The chain's name inside Ponder (`/status` keys, `publicClients`): one chain per indexer instance. */
export const CHAIN_NAME = 'payments';
