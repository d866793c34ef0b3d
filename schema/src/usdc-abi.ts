import { parseAbi } from 'viem';

/** The part of the ERC-20 ABI that ChainMeter uses (the devnet token adds an open `mint`). */
export const usdcAbi = parseAbi([
  'event Transfer(address indexed from, address indexed to, uint256 value)',
  'function transfer(address to, uint256 value) returns (bool)',
  'function balanceOf(address account) view returns (uint256)',
  'function decimals() view returns (uint8)',
  'function symbol() view returns (string)',
  'function mint(address to, uint256 amount)',
]);
