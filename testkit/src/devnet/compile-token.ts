/**
 * Compiles `testkit/contracts/TestUSDC.sol` with the solc npm package (standard JSON) and writes
 * `testkit/contracts/TestUSDC.json` ({ abi, bytecode }). The artifact is checked in so that starting
 * a devnet never needs a compiler: run `node testkit/src/devnet/compile-token.ts` after editing the
 * contract.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

const CONTRACTS_DIR = fileURLToPath(new URL('../../contracts/', import.meta.url));
const SOURCE_NAME = 'TestUSDC.sol';
const CONTRACT_NAME = 'TestUSDC';

type SolcOutput = {
  errors?: { severity: 'error' | 'warning' | 'info'; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
};

function compileTestUsdc(): { abi: unknown[]; bytecode: `0x${string}` } {
  const input = {
    language: 'Solidity',
    sources: { [SOURCE_NAME]: { content: readFileSync(`${CONTRACTS_DIR}${SOURCE_NAME}`, 'utf8') } },
    settings: {
      // Cancun runs on anvil's default hardfork and on Base alike.
      evmVersion: 'cancun',
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  }
  const contract = output.contracts?.[SOURCE_NAME]?.[CONTRACT_NAME];
  if (!contract) throw new Error(`solc produced no ${CONTRACT_NAME} contract`);
  return { abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const artifact = compileTestUsdc();
  const target = `${CONTRACTS_DIR}${CONTRACT_NAME}.json`;
  writeFileSync(target, `${JSON.stringify(artifact, null, 2)}\n`);
  console.log(`wrote ${target} (solc ${solc.version()}, ${(artifact.bytecode.length - 2) / 2} bytes)`);
}
