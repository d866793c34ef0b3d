/**
 * The web client's build. In production the API serves `dist/` on its own origin; in development Vite
 * proxies `/graphql` (HTTP and SSE) and `/v1` to the API at CHAINMETER_API_URL (default the `npm start` one).
 */
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

const api = process.env.CHAINMETER_API_URL ?? 'http://127.0.0.1:4000';

/**
 * WalletConnect's SDK (with Reown's modal) imports viem as a whole (a namespace import) and much of ox and
 * noble: sharing those modules with the app, the bundler would put everything the SDK uses of them into
 * chunks the first load imports. The SDK gets its own copies instead (module ids with `?wallet-sdk`), so they
 * stay in its lazy chunks; only a build with WALLETCONNECT_PROJECT_ID contains them.
 */
function walletSdkOwnLibraries(): Plugin {
  const SUFFIX = '?wallet-sdk';
  const sdk = /node_modules[\\/](@walletconnect|@reown)[\\/]/;
  const shared =
    /node_modules[\\/](viem|ox|abitype|@noble[\\/](hashes|curves)|@scure[\\/](base|bip32|bip39))[\\/]/;
  return {
    name: 'chainmeter:wallet-sdk-own-libraries',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      if (!importer || !(sdk.test(importer) || importer.endsWith(SUFFIX))) return null;
      const resolved = await this.resolve(source, importer.replace(SUFFIX, ''), {
        ...options,
        skipSelf: true,
      });
      if (!resolved || resolved.external || !shared.test(resolved.id)) return null;
      return { ...resolved, id: `${resolved.id}${SUFFIX}` };
    },
  };
}

export default defineConfig({
  plugins: [react(), walletSdkOwnLibraries()],
  // WALLETCONNECT_PROJECT_ID (from the environment or the root .env, at build time) turns the WalletConnect
  // connector on; it is public (WalletConnect project ids are sent to every browser anyway).
  envPrefix: ['VITE_', 'WALLETCONNECT_PROJECT_ID'],
  // The repository's .env (documented in .env.example), like the API and the scripts.
  envDir: '..',
  build: {
    outDir: 'dist',
    sourcemap: true,
    target: 'es2022',
    chunkSizeWarningLimit: 600,
    rolldownOptions: {
      output: {
        codeSplitting: {
          // Only the modules named below: their helpers stay where the bundler would put them.
          includeDependenciesRecursively: false,
          groups: [
            // The secp256k1 curve signs (dev wallet) and recovers (wallet SDKs): never needed on first load.
            // Left to itself, the bundler puts it beside small helpers the first load does need.
            // The wallet SDKs (Coinbase Wallet, WalletConnect with Reown's modal) and what only they use: loaded
            // when someone picks the wallet, never on first load.
            {
              name: 'walletconnect',
              test: /node_modules[\\/](@walletconnect|@reown|@lit|@lit-labs|lit|lit-html|lit-element|valtio|proxy-compare|big\.js|bs58|base-x|derive-valtio|@msgpack|uint8arrays|multiformats|destr|unstorage|pino|@stablelib|detect-browser|query-string|decode-uri-component|split-on-first|filter-obj|cross-fetch)[\\/]/,
            },
            {
              name: 'coinbase-wallet-sdk',
              test: /node_modules[\\/](@coinbase|preact|clsx|idb-keyval)[\\/]/,
            },
            {
              name: 'secp256k1',
              test: /@noble[\\/]curves[\\/]esm[\\/](secp256k1|_shortw_utils|abstract[\\/](weierstrass|curve|modular))\.js/,
            },
          ],
        },
      },
    },
  },
  server: { proxy: { '/graphql': { target: api, ws: true }, '/v1': api } },
});
