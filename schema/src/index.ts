export * from './chains.ts';
export * from './money.ts';
export * from './usdc-abi.ts';
export * from './ledger-hash.ts';
export * from './verify-chain.ts';
