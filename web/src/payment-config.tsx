import { createContext, use } from 'react';
import { type FragmentType, getFragmentData, graphql } from './gql';

export const PaymentConfigFields = graphql(`
  fragment PaymentConfigFields on PaymentConfig {
    chainId
    tokenAddress
    tokenDecimals
    treasuryAddress
    confirmations
    creditsPerToken
    gaslessMinAmount
  }
`);

export type PaymentConfig = ReturnType<typeof readPaymentConfig>;

export function readPaymentConfig(data: FragmentType<typeof PaymentConfigFields>) {
  return getFragmentData(PaymentConfigFields, data);
}

export const PaymentConfigContext = createContext<PaymentConfig | null>(null);

export function usePaymentConfig(): PaymentConfig {
  const config = use(PaymentConfigContext);
  if (!config) throw new Error('usePaymentConfig outside the PaymentConfigContext');
  return config;
}
