// One ABI for the whole repo: the indexer reads the same definition the API and web client use.
export { usdcAbi } from '@chainmeter/schema';
