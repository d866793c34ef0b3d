export * from './chains.ts';
export * from './crediting-rules.ts';
export * from './ledger-hash.ts';
export * from './money.ts';
export * from './usdc-abi.ts';
export * from './verify-chain.ts';
