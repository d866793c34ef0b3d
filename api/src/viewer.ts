/**
 * Who is calling: the authenticated account and the credential it used. Shared by every module that
 * authorizes, so this file imports nothing it describes (no service imports it back into a cycle).
 */
import type { Address } from 'viem';

export interface Viewer {
  accountId: string;
  walletAddress: Address;
  role: 'user' | 'auditor';
  /**
   * The operator role (`OPERATOR_ADDRESSES`): true only for a session (SIWE) of an operator's wallet, never
   * for an API key, so a leaked key cannot adjust balances. Services check it (`operations.service.ts`).
   */
  operator?: boolean;
  credential:
    | { kind: 'session'; sessionId: string }
    /** `allowedModels`: the only models the key may call (fixed at its creation); absent for any. */
    | { kind: 'apiKey'; apiKeyId: string; allowedModels?: readonly string[] };
}
