/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Build-time: turns on the WalletConnect connector (see vite.config.ts). */
  readonly WALLETCONNECT_PROJECT_ID?: string;
}
