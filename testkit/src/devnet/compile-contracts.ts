/**
 * Compiles every `testkit/contracts/*.sol` with the solc npm package (standard JSON) and writes one
 * `testkit/contracts/<Contract>.json` ({ abi, bytecode, deployedBytecode }) per contract they define.
 * The artifacts are checked in so that starting a devnet never needs a compiler: run
 * `node testkit/src/devnet/compile-contracts.ts` after editing a contract.
 *
 * `bytecode` is what a deployment sends (constructor included); `deployedBytecode` is the runtime code,
 * which the devnet places at a fixed address with `anvil_setCode` (no constructor runs there).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

const CONTRACTS_DIR = fileURLToPath(new URL('../../contracts/', import.meta.url));

type CompiledContract = {
  abi: unknown[];
  evm: { bytecode: { object: string }; deployedBytecode: { object: string } };
};
type SolcOutput = {
  errors?: { severity: 'error' | 'warning' | 'info'; formattedMessage: string }[];
  contracts?: Record<string, Record<string, CompiledContract>>;
};

export type ContractArtifact = { abi: unknown[]; bytecode: `0x${string}`; deployedBytecode: `0x${string}` };

function compileContracts(): Map<string, ContractArtifact> {
  const sources: Record<string, { content: string }> = {};
  for (const file of readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith('.sol'))
    .sort()) {
    sources[file] = { content: readFileSync(`${CONTRACTS_DIR}${file}`, 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      // Cancun runs on anvil's default hardfork and on Base alike.
      evmVersion: 'cancun',
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  }
  const artifacts = new Map<string, ContractArtifact>();
  for (const [, contracts] of Object.entries(output.contracts ?? {})) {
    for (const [name, contract] of Object.entries(contracts)) {
      // Interfaces compile to no code: nothing to deploy or place.
      if (contract.evm.bytecode.object === '') continue;
      if (artifacts.has(name)) throw new Error(`two contracts are named ${name}`);
      artifacts.set(name, {
        abi: contract.abi,
        bytecode: `0x${contract.evm.bytecode.object}`,
        deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
      });
    }
  }
  return artifacts;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [name, artifact] of compileContracts()) {
    const target = `${CONTRACTS_DIR}${name}.json`;
    writeFileSync(target, `${JSON.stringify(artifact, null, 2)}\n`);
    console.log(
      `wrote ${target} (solc ${solc.version()}, ${(artifact.deployedBytecode.length - 2) / 2} bytes)`,
    );
  }
}
