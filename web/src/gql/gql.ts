/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query PaymentConfig {\n    paymentConfig {\n      ...PaymentConfigFields\n    }\n  }\n": typeof types.PaymentConfigDocument,
    "\n  query OperatorCheck {\n    operations {\n      __typename\n    }\n  }\n": typeof types.OperatorCheckDocument,
    "\n  fragment DepositProgress_deposit on Deposit {\n    id\n    chainId\n    txHash\n    blockNumber\n    credits\n    status\n    confirmations\n    creditedAt\n  }\n": typeof types.DepositProgress_DepositFragmentDoc,
    "\n  fragment LedgerRow_entry on LedgerEntry {\n    id\n    amount\n    balanceAfter\n    reason\n    createdAt\n    deposit {\n      id\n      chainId\n      txHash\n    }\n  }\n": typeof types.LedgerRow_EntryFragmentDoc,
    "\n  query LowBalanceThreshold {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": typeof types.LowBalanceThresholdDocument,
    "\n  subscription BalanceUpdated {\n    balanceUpdated {\n      balance\n      entry {\n        id\n        reason\n      }\n    }\n  }\n": typeof types.BalanceUpdatedDocument,
    "\n  subscription DepositUpdated {\n    depositUpdated {\n      id\n      txHash\n      status\n      ...DepositProgress_deposit\n    }\n  }\n": typeof types.DepositUpdatedDocument,
    "\n  query LiveCatchUp {\n    me {\n      id\n      balance\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n    }\n  }\n": typeof types.LiveCatchUpDocument,
    "\n  fragment ApiKeyRow_apiKey on ApiKey {\n    id\n    name\n    prefix\n    createdAt\n    lastUsedAt\n    revokedAt\n    expiresAt\n    spendLimit\n    spent\n    scope\n    limitReset\n    allowedModels\n    spentThisPeriod\n  }\n": typeof types.ApiKeyRow_ApiKeyFragmentDoc,
    "\n  query ApiKeys {\n    me {\n      id\n      availableApiKeyScopes\n      apiKeys {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n": typeof types.ApiKeysDocument,
    "\n  mutation CreateApiKey($input: CreateApiKeyInput!) {\n    createApiKey(input: $input) {\n      secret\n      apiKey {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n": typeof types.CreateApiKeyDocument,
    "\n  mutation RevokeApiKey($id: ID!) {\n    revokeApiKey(id: $id) {\n      id\n      ...ApiKeyRow_apiKey\n    }\n  }\n": typeof types.RevokeApiKeyDocument,
    "\n  query Dashboard {\n    me {\n      id\n      balance\n      debt\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n      ledger(first: 5) {\n        edges {\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n      }\n    }\n  }\n": typeof types.DashboardDocument,
    "\n  query Ledger($first: Int!, $after: String) {\n    me {\n      id\n      ledger(first: $first, after: $after) {\n        edges {\n          cursor\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n": typeof types.LedgerDocument,
    "\n  query Operations($from: DateTime!, $to: DateTime!, $historyFrom: DateTime!, $historyTo: DateTime!) {\n    solvency {\n      treasuryBalance\n      outstandingCredits\n      heldCredits\n      creditedDeposits\n      chargedUsage\n      operatorAdjustments\n      accountDebt\n      asOfBlock\n      takenAt\n    }\n    solvencyHistory(from: $historyFrom, to: $historyTo) {\n      takenAt\n      treasuryBalance\n      outstandingCredits\n    }\n    operations {\n      needsReview(first: 50) {\n        edges {\n          node {\n            id\n            requestId\n            model\n            walletAddress\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            flags\n            createdAt\n          }\n        }\n        pageInfo {\n          hasNextPage\n        }\n      }\n      byDay: revenue(from: $from, to: $to, groupBy: DAY) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n      byModel: revenue(from: $from, to: $to, groupBy: MODEL) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n    }\n  }\n": typeof types.OperationsDocument,
    "\n  mutation ResolveUsage($id: ID!, $input: ResolveUsageInput!) {\n    resolveUsage(id: $id, input: $input) {\n      id\n      userPrice\n      resolution\n      resolvedBy\n    }\n  }\n": typeof types.ResolveUsageDocument,
    "\n  mutation AdjustBalance($input: AdjustBalanceInput!) {\n    adjustBalance(input: $input) {\n      id\n      amount\n      balanceAfter\n      operator\n      reasonText\n    }\n  }\n": typeof types.AdjustBalanceDocument,
    "\n  mutation CreateCompletion($input: CompletionInput!) {\n    createCompletion(input: $input) {\n      id\n      model\n      content\n      usage {\n        id\n        promptTokens\n        completionTokens\n        userPrice\n        billingStatus\n      }\n    }\n  }\n": typeof types.CreateCompletionDocument,
    "\n  query PlaygroundBalance {\n    me {\n      id\n      balance\n    }\n  }\n": typeof types.PlaygroundBalanceDocument,
    "\n  query BalanceSettings {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": typeof types.BalanceSettingsDocument,
    "\n  query AutoTopUpSettings {\n    me {\n      id\n      autoTopUp {\n        threshold\n        remaining\n        paused\n        pausedReason\n        nonces\n      }\n    }\n  }\n": typeof types.AutoTopUpSettingsDocument,
    "\n  mutation SetAutoTopUp($input: AutoTopUpInput!) {\n    setAutoTopUp(input: $input) {\n      threshold\n      remaining\n      paused\n      pausedReason\n      nonces\n    }\n  }\n": typeof types.SetAutoTopUpDocument,
    "\n  mutation CancelAutoTopUp {\n    cancelAutoTopUp\n  }\n": typeof types.CancelAutoTopUpDocument,
    "\n  mutation SetLowBalanceAlert($threshold: Credits) {\n    setLowBalanceAlert(threshold: $threshold) {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": typeof types.SetLowBalanceAlertDocument,
    "\n  query Usage($first: Int!, $after: String, $filter: UsageFilter, $from: DateTime!, $to: DateTime!) {\n    me {\n      id\n      apiKeys {\n        id\n        name\n        prefix\n      }\n      byDay: usageSummary(from: $from, to: $to, groupBy: DAY) {\n        key\n        requests\n        userPrice\n      }\n      byModel: usageSummary(from: $from, to: $to, groupBy: MODEL) {\n        key\n        requests\n        userPrice\n      }\n      usage(first: $first, after: $after, filter: $filter) {\n        edges {\n          cursor\n          node {\n            id\n            requestId\n            model\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            billingStatus\n            createdAt\n            apiKey {\n              id\n              name\n            }\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n": typeof types.UsageDocument,
    "\n  fragment WebhookDeliveryRow_delivery on WebhookDelivery {\n    id\n    webhookId\n    eventType\n    status\n    attempts\n    lastResponseCode\n    createdAt\n    deliveredAt\n    attemptLog {\n      id\n      latencyMs\n      error\n    }\n  }\n": typeof types.WebhookDeliveryRow_DeliveryFragmentDoc,
    "\n  fragment WebhookEndpoint_endpoint on WebhookEndpoint {\n    id\n    url\n    events\n    createdAt\n    deliveries(first: 20) {\n      edges {\n        node {\n          id\n          ...WebhookDeliveryRow_delivery\n        }\n      }\n    }\n  }\n": typeof types.WebhookEndpoint_EndpointFragmentDoc,
    "\n  query Webhooks {\n    me {\n      id\n      webhookEndpoints {\n        id\n        ...WebhookEndpoint_endpoint\n      }\n    }\n  }\n": typeof types.WebhooksDocument,
    "\n  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {\n    createWebhookEndpoint(input: $input) {\n      secret\n      endpoint {\n        id\n        url\n      }\n    }\n  }\n": typeof types.CreateWebhookEndpointDocument,
    "\n  mutation DeleteWebhookEndpoint($id: ID!) {\n    deleteWebhookEndpoint(id: $id) {\n      id\n    }\n  }\n": typeof types.DeleteWebhookEndpointDocument,
    "\n  mutation RedeliverWebhook($deliveryId: ID!) {\n    redeliverWebhook(deliveryId: $deliveryId) {\n      id\n      ...WebhookDeliveryRow_delivery\n    }\n  }\n": typeof types.RedeliverWebhookDocument,
    "\n  fragment PaymentConfigFields on PaymentConfig {\n    chainId\n    tokenAddress\n    tokenDecimals\n    treasuryAddress\n    confirmations\n    creditsPerToken\n    gaslessMinAmount\n  }\n": typeof types.PaymentConfigFieldsFragmentDoc,
    "\n  query Me {\n    me {\n      id\n      walletAddress\n      balance\n    }\n  }\n": typeof types.MeDocument,
    "\n  mutation SiweChallenge($address: Address!, $chainId: Int!) {\n    siweChallenge(address: $address, chainId: $chainId)\n  }\n": typeof types.SiweChallengeDocument,
    "\n  mutation SignIn($message: String!, $signature: String!) {\n    signIn(message: $message, signature: $signature) {\n      expiresAt\n      account {\n        id\n        walletAddress\n      }\n    }\n  }\n": typeof types.SignInDocument,
    "\n  mutation SignOut {\n    signOut\n  }\n": typeof types.SignOutDocument,
    "\n  mutation RelayPayment($input: TransferAuthorizationInput!) {\n    relayPayment(input: $input) {\n      txHash\n      amountToken\n    }\n  }\n": typeof types.RelayPaymentDocument,
};
const documents: Documents = {
    "\n  query PaymentConfig {\n    paymentConfig {\n      ...PaymentConfigFields\n    }\n  }\n": types.PaymentConfigDocument,
    "\n  query OperatorCheck {\n    operations {\n      __typename\n    }\n  }\n": types.OperatorCheckDocument,
    "\n  fragment DepositProgress_deposit on Deposit {\n    id\n    chainId\n    txHash\n    blockNumber\n    credits\n    status\n    confirmations\n    creditedAt\n  }\n": types.DepositProgress_DepositFragmentDoc,
    "\n  fragment LedgerRow_entry on LedgerEntry {\n    id\n    amount\n    balanceAfter\n    reason\n    createdAt\n    deposit {\n      id\n      chainId\n      txHash\n    }\n  }\n": types.LedgerRow_EntryFragmentDoc,
    "\n  query LowBalanceThreshold {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": types.LowBalanceThresholdDocument,
    "\n  subscription BalanceUpdated {\n    balanceUpdated {\n      balance\n      entry {\n        id\n        reason\n      }\n    }\n  }\n": types.BalanceUpdatedDocument,
    "\n  subscription DepositUpdated {\n    depositUpdated {\n      id\n      txHash\n      status\n      ...DepositProgress_deposit\n    }\n  }\n": types.DepositUpdatedDocument,
    "\n  query LiveCatchUp {\n    me {\n      id\n      balance\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n    }\n  }\n": types.LiveCatchUpDocument,
    "\n  fragment ApiKeyRow_apiKey on ApiKey {\n    id\n    name\n    prefix\n    createdAt\n    lastUsedAt\n    revokedAt\n    expiresAt\n    spendLimit\n    spent\n    scope\n    limitReset\n    allowedModels\n    spentThisPeriod\n  }\n": types.ApiKeyRow_ApiKeyFragmentDoc,
    "\n  query ApiKeys {\n    me {\n      id\n      availableApiKeyScopes\n      apiKeys {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n": types.ApiKeysDocument,
    "\n  mutation CreateApiKey($input: CreateApiKeyInput!) {\n    createApiKey(input: $input) {\n      secret\n      apiKey {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n": types.CreateApiKeyDocument,
    "\n  mutation RevokeApiKey($id: ID!) {\n    revokeApiKey(id: $id) {\n      id\n      ...ApiKeyRow_apiKey\n    }\n  }\n": types.RevokeApiKeyDocument,
    "\n  query Dashboard {\n    me {\n      id\n      balance\n      debt\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n      ledger(first: 5) {\n        edges {\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n      }\n    }\n  }\n": types.DashboardDocument,
    "\n  query Ledger($first: Int!, $after: String) {\n    me {\n      id\n      ledger(first: $first, after: $after) {\n        edges {\n          cursor\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n": types.LedgerDocument,
    "\n  query Operations($from: DateTime!, $to: DateTime!, $historyFrom: DateTime!, $historyTo: DateTime!) {\n    solvency {\n      treasuryBalance\n      outstandingCredits\n      heldCredits\n      creditedDeposits\n      chargedUsage\n      operatorAdjustments\n      accountDebt\n      asOfBlock\n      takenAt\n    }\n    solvencyHistory(from: $historyFrom, to: $historyTo) {\n      takenAt\n      treasuryBalance\n      outstandingCredits\n    }\n    operations {\n      needsReview(first: 50) {\n        edges {\n          node {\n            id\n            requestId\n            model\n            walletAddress\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            flags\n            createdAt\n          }\n        }\n        pageInfo {\n          hasNextPage\n        }\n      }\n      byDay: revenue(from: $from, to: $to, groupBy: DAY) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n      byModel: revenue(from: $from, to: $to, groupBy: MODEL) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n    }\n  }\n": types.OperationsDocument,
    "\n  mutation ResolveUsage($id: ID!, $input: ResolveUsageInput!) {\n    resolveUsage(id: $id, input: $input) {\n      id\n      userPrice\n      resolution\n      resolvedBy\n    }\n  }\n": types.ResolveUsageDocument,
    "\n  mutation AdjustBalance($input: AdjustBalanceInput!) {\n    adjustBalance(input: $input) {\n      id\n      amount\n      balanceAfter\n      operator\n      reasonText\n    }\n  }\n": types.AdjustBalanceDocument,
    "\n  mutation CreateCompletion($input: CompletionInput!) {\n    createCompletion(input: $input) {\n      id\n      model\n      content\n      usage {\n        id\n        promptTokens\n        completionTokens\n        userPrice\n        billingStatus\n      }\n    }\n  }\n": types.CreateCompletionDocument,
    "\n  query PlaygroundBalance {\n    me {\n      id\n      balance\n    }\n  }\n": types.PlaygroundBalanceDocument,
    "\n  query BalanceSettings {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": types.BalanceSettingsDocument,
    "\n  query AutoTopUpSettings {\n    me {\n      id\n      autoTopUp {\n        threshold\n        remaining\n        paused\n        pausedReason\n        nonces\n      }\n    }\n  }\n": types.AutoTopUpSettingsDocument,
    "\n  mutation SetAutoTopUp($input: AutoTopUpInput!) {\n    setAutoTopUp(input: $input) {\n      threshold\n      remaining\n      paused\n      pausedReason\n      nonces\n    }\n  }\n": types.SetAutoTopUpDocument,
    "\n  mutation CancelAutoTopUp {\n    cancelAutoTopUp\n  }\n": types.CancelAutoTopUpDocument,
    "\n  mutation SetLowBalanceAlert($threshold: Credits) {\n    setLowBalanceAlert(threshold: $threshold) {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n": types.SetLowBalanceAlertDocument,
    "\n  query Usage($first: Int!, $after: String, $filter: UsageFilter, $from: DateTime!, $to: DateTime!) {\n    me {\n      id\n      apiKeys {\n        id\n        name\n        prefix\n      }\n      byDay: usageSummary(from: $from, to: $to, groupBy: DAY) {\n        key\n        requests\n        userPrice\n      }\n      byModel: usageSummary(from: $from, to: $to, groupBy: MODEL) {\n        key\n        requests\n        userPrice\n      }\n      usage(first: $first, after: $after, filter: $filter) {\n        edges {\n          cursor\n          node {\n            id\n            requestId\n            model\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            billingStatus\n            createdAt\n            apiKey {\n              id\n              name\n            }\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n": types.UsageDocument,
    "\n  fragment WebhookDeliveryRow_delivery on WebhookDelivery {\n    id\n    webhookId\n    eventType\n    status\n    attempts\n    lastResponseCode\n    createdAt\n    deliveredAt\n    attemptLog {\n      id\n      latencyMs\n      error\n    }\n  }\n": types.WebhookDeliveryRow_DeliveryFragmentDoc,
    "\n  fragment WebhookEndpoint_endpoint on WebhookEndpoint {\n    id\n    url\n    events\n    createdAt\n    deliveries(first: 20) {\n      edges {\n        node {\n          id\n          ...WebhookDeliveryRow_delivery\n        }\n      }\n    }\n  }\n": types.WebhookEndpoint_EndpointFragmentDoc,
    "\n  query Webhooks {\n    me {\n      id\n      webhookEndpoints {\n        id\n        ...WebhookEndpoint_endpoint\n      }\n    }\n  }\n": types.WebhooksDocument,
    "\n  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {\n    createWebhookEndpoint(input: $input) {\n      secret\n      endpoint {\n        id\n        url\n      }\n    }\n  }\n": types.CreateWebhookEndpointDocument,
    "\n  mutation DeleteWebhookEndpoint($id: ID!) {\n    deleteWebhookEndpoint(id: $id) {\n      id\n    }\n  }\n": types.DeleteWebhookEndpointDocument,
    "\n  mutation RedeliverWebhook($deliveryId: ID!) {\n    redeliverWebhook(deliveryId: $deliveryId) {\n      id\n      ...WebhookDeliveryRow_delivery\n    }\n  }\n": types.RedeliverWebhookDocument,
    "\n  fragment PaymentConfigFields on PaymentConfig {\n    chainId\n    tokenAddress\n    tokenDecimals\n    treasuryAddress\n    confirmations\n    creditsPerToken\n    gaslessMinAmount\n  }\n": types.PaymentConfigFieldsFragmentDoc,
    "\n  query Me {\n    me {\n      id\n      walletAddress\n      balance\n    }\n  }\n": types.MeDocument,
    "\n  mutation SiweChallenge($address: Address!, $chainId: Int!) {\n    siweChallenge(address: $address, chainId: $chainId)\n  }\n": types.SiweChallengeDocument,
    "\n  mutation SignIn($message: String!, $signature: String!) {\n    signIn(message: $message, signature: $signature) {\n      expiresAt\n      account {\n        id\n        walletAddress\n      }\n    }\n  }\n": types.SignInDocument,
    "\n  mutation SignOut {\n    signOut\n  }\n": types.SignOutDocument,
    "\n  mutation RelayPayment($input: TransferAuthorizationInput!) {\n    relayPayment(input: $input) {\n      txHash\n      amountToken\n    }\n  }\n": types.RelayPaymentDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query PaymentConfig {\n    paymentConfig {\n      ...PaymentConfigFields\n    }\n  }\n"): (typeof documents)["\n  query PaymentConfig {\n    paymentConfig {\n      ...PaymentConfigFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query OperatorCheck {\n    operations {\n      __typename\n    }\n  }\n"): (typeof documents)["\n  query OperatorCheck {\n    operations {\n      __typename\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment DepositProgress_deposit on Deposit {\n    id\n    chainId\n    txHash\n    blockNumber\n    credits\n    status\n    confirmations\n    creditedAt\n  }\n"): (typeof documents)["\n  fragment DepositProgress_deposit on Deposit {\n    id\n    chainId\n    txHash\n    blockNumber\n    credits\n    status\n    confirmations\n    creditedAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment LedgerRow_entry on LedgerEntry {\n    id\n    amount\n    balanceAfter\n    reason\n    createdAt\n    deposit {\n      id\n      chainId\n      txHash\n    }\n  }\n"): (typeof documents)["\n  fragment LedgerRow_entry on LedgerEntry {\n    id\n    amount\n    balanceAfter\n    reason\n    createdAt\n    deposit {\n      id\n      chainId\n      txHash\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query LowBalanceThreshold {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"): (typeof documents)["\n  query LowBalanceThreshold {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription BalanceUpdated {\n    balanceUpdated {\n      balance\n      entry {\n        id\n        reason\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription BalanceUpdated {\n    balanceUpdated {\n      balance\n      entry {\n        id\n        reason\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription DepositUpdated {\n    depositUpdated {\n      id\n      txHash\n      status\n      ...DepositProgress_deposit\n    }\n  }\n"): (typeof documents)["\n  subscription DepositUpdated {\n    depositUpdated {\n      id\n      txHash\n      status\n      ...DepositProgress_deposit\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query LiveCatchUp {\n    me {\n      id\n      balance\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query LiveCatchUp {\n    me {\n      id\n      balance\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ApiKeyRow_apiKey on ApiKey {\n    id\n    name\n    prefix\n    createdAt\n    lastUsedAt\n    revokedAt\n    expiresAt\n    spendLimit\n    spent\n    scope\n    limitReset\n    allowedModels\n    spentThisPeriod\n  }\n"): (typeof documents)["\n  fragment ApiKeyRow_apiKey on ApiKey {\n    id\n    name\n    prefix\n    createdAt\n    lastUsedAt\n    revokedAt\n    expiresAt\n    spendLimit\n    spent\n    scope\n    limitReset\n    allowedModels\n    spentThisPeriod\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ApiKeys {\n    me {\n      id\n      availableApiKeyScopes\n      apiKeys {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n"): (typeof documents)["\n  query ApiKeys {\n    me {\n      id\n      availableApiKeyScopes\n      apiKeys {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateApiKey($input: CreateApiKeyInput!) {\n    createApiKey(input: $input) {\n      secret\n      apiKey {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateApiKey($input: CreateApiKeyInput!) {\n    createApiKey(input: $input) {\n      secret\n      apiKey {\n        id\n        scope\n        ...ApiKeyRow_apiKey\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeApiKey($id: ID!) {\n    revokeApiKey(id: $id) {\n      id\n      ...ApiKeyRow_apiKey\n    }\n  }\n"): (typeof documents)["\n  mutation RevokeApiKey($id: ID!) {\n    revokeApiKey(id: $id) {\n      id\n      ...ApiKeyRow_apiKey\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Dashboard {\n    me {\n      id\n      balance\n      debt\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n      ledger(first: 5) {\n        edges {\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query Dashboard {\n    me {\n      id\n      balance\n      debt\n      deposits(first: 20) {\n        edges {\n          node {\n            id\n            txHash\n            status\n            ...DepositProgress_deposit\n          }\n        }\n      }\n      ledger(first: 5) {\n        edges {\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Ledger($first: Int!, $after: String) {\n    me {\n      id\n      ledger(first: $first, after: $after) {\n        edges {\n          cursor\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query Ledger($first: Int!, $after: String) {\n    me {\n      id\n      ledger(first: $first, after: $after) {\n        edges {\n          cursor\n          node {\n            id\n            ...LedgerRow_entry\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Operations($from: DateTime!, $to: DateTime!, $historyFrom: DateTime!, $historyTo: DateTime!) {\n    solvency {\n      treasuryBalance\n      outstandingCredits\n      heldCredits\n      creditedDeposits\n      chargedUsage\n      operatorAdjustments\n      accountDebt\n      asOfBlock\n      takenAt\n    }\n    solvencyHistory(from: $historyFrom, to: $historyTo) {\n      takenAt\n      treasuryBalance\n      outstandingCredits\n    }\n    operations {\n      needsReview(first: 50) {\n        edges {\n          node {\n            id\n            requestId\n            model\n            walletAddress\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            flags\n            createdAt\n          }\n        }\n        pageInfo {\n          hasNextPage\n        }\n      }\n      byDay: revenue(from: $from, to: $to, groupBy: DAY) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n      byModel: revenue(from: $from, to: $to, groupBy: MODEL) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n    }\n  }\n"): (typeof documents)["\n  query Operations($from: DateTime!, $to: DateTime!, $historyFrom: DateTime!, $historyTo: DateTime!) {\n    solvency {\n      treasuryBalance\n      outstandingCredits\n      heldCredits\n      creditedDeposits\n      chargedUsage\n      operatorAdjustments\n      accountDebt\n      asOfBlock\n      takenAt\n    }\n    solvencyHistory(from: $historyFrom, to: $historyTo) {\n      takenAt\n      treasuryBalance\n      outstandingCredits\n    }\n    operations {\n      needsReview(first: 50) {\n        edges {\n          node {\n            id\n            requestId\n            model\n            walletAddress\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            flags\n            createdAt\n          }\n        }\n        pageInfo {\n          hasNextPage\n        }\n      }\n      byDay: revenue(from: $from, to: $to, groupBy: DAY) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n      byModel: revenue(from: $from, to: $to, groupBy: MODEL) {\n        key\n        userPrice\n        providerCost\n        margin\n        calls\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ResolveUsage($id: ID!, $input: ResolveUsageInput!) {\n    resolveUsage(id: $id, input: $input) {\n      id\n      userPrice\n      resolution\n      resolvedBy\n    }\n  }\n"): (typeof documents)["\n  mutation ResolveUsage($id: ID!, $input: ResolveUsageInput!) {\n    resolveUsage(id: $id, input: $input) {\n      id\n      userPrice\n      resolution\n      resolvedBy\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AdjustBalance($input: AdjustBalanceInput!) {\n    adjustBalance(input: $input) {\n      id\n      amount\n      balanceAfter\n      operator\n      reasonText\n    }\n  }\n"): (typeof documents)["\n  mutation AdjustBalance($input: AdjustBalanceInput!) {\n    adjustBalance(input: $input) {\n      id\n      amount\n      balanceAfter\n      operator\n      reasonText\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateCompletion($input: CompletionInput!) {\n    createCompletion(input: $input) {\n      id\n      model\n      content\n      usage {\n        id\n        promptTokens\n        completionTokens\n        userPrice\n        billingStatus\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateCompletion($input: CompletionInput!) {\n    createCompletion(input: $input) {\n      id\n      model\n      content\n      usage {\n        id\n        promptTokens\n        completionTokens\n        userPrice\n        billingStatus\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query PlaygroundBalance {\n    me {\n      id\n      balance\n    }\n  }\n"): (typeof documents)["\n  query PlaygroundBalance {\n    me {\n      id\n      balance\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query BalanceSettings {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"): (typeof documents)["\n  query BalanceSettings {\n    me {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AutoTopUpSettings {\n    me {\n      id\n      autoTopUp {\n        threshold\n        remaining\n        paused\n        pausedReason\n        nonces\n      }\n    }\n  }\n"): (typeof documents)["\n  query AutoTopUpSettings {\n    me {\n      id\n      autoTopUp {\n        threshold\n        remaining\n        paused\n        pausedReason\n        nonces\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetAutoTopUp($input: AutoTopUpInput!) {\n    setAutoTopUp(input: $input) {\n      threshold\n      remaining\n      paused\n      pausedReason\n      nonces\n    }\n  }\n"): (typeof documents)["\n  mutation SetAutoTopUp($input: AutoTopUpInput!) {\n    setAutoTopUp(input: $input) {\n      threshold\n      remaining\n      paused\n      pausedReason\n      nonces\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelAutoTopUp {\n    cancelAutoTopUp\n  }\n"): (typeof documents)["\n  mutation CancelAutoTopUp {\n    cancelAutoTopUp\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetLowBalanceAlert($threshold: Credits) {\n    setLowBalanceAlert(threshold: $threshold) {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"): (typeof documents)["\n  mutation SetLowBalanceAlert($threshold: Credits) {\n    setLowBalanceAlert(threshold: $threshold) {\n      id\n      balance\n      lowBalanceThreshold\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Usage($first: Int!, $after: String, $filter: UsageFilter, $from: DateTime!, $to: DateTime!) {\n    me {\n      id\n      apiKeys {\n        id\n        name\n        prefix\n      }\n      byDay: usageSummary(from: $from, to: $to, groupBy: DAY) {\n        key\n        requests\n        userPrice\n      }\n      byModel: usageSummary(from: $from, to: $to, groupBy: MODEL) {\n        key\n        requests\n        userPrice\n      }\n      usage(first: $first, after: $after, filter: $filter) {\n        edges {\n          cursor\n          node {\n            id\n            requestId\n            model\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            billingStatus\n            createdAt\n            apiKey {\n              id\n              name\n            }\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query Usage($first: Int!, $after: String, $filter: UsageFilter, $from: DateTime!, $to: DateTime!) {\n    me {\n      id\n      apiKeys {\n        id\n        name\n        prefix\n      }\n      byDay: usageSummary(from: $from, to: $to, groupBy: DAY) {\n        key\n        requests\n        userPrice\n      }\n      byModel: usageSummary(from: $from, to: $to, groupBy: MODEL) {\n        key\n        requests\n        userPrice\n      }\n      usage(first: $first, after: $after, filter: $filter) {\n        edges {\n          cursor\n          node {\n            id\n            requestId\n            model\n            promptTokens\n            completionTokens\n            providerCost\n            userPrice\n            billingStatus\n            createdAt\n            apiKey {\n              id\n              name\n            }\n          }\n        }\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment WebhookDeliveryRow_delivery on WebhookDelivery {\n    id\n    webhookId\n    eventType\n    status\n    attempts\n    lastResponseCode\n    createdAt\n    deliveredAt\n    attemptLog {\n      id\n      latencyMs\n      error\n    }\n  }\n"): (typeof documents)["\n  fragment WebhookDeliveryRow_delivery on WebhookDelivery {\n    id\n    webhookId\n    eventType\n    status\n    attempts\n    lastResponseCode\n    createdAt\n    deliveredAt\n    attemptLog {\n      id\n      latencyMs\n      error\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment WebhookEndpoint_endpoint on WebhookEndpoint {\n    id\n    url\n    events\n    createdAt\n    deliveries(first: 20) {\n      edges {\n        node {\n          id\n          ...WebhookDeliveryRow_delivery\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  fragment WebhookEndpoint_endpoint on WebhookEndpoint {\n    id\n    url\n    events\n    createdAt\n    deliveries(first: 20) {\n      edges {\n        node {\n          id\n          ...WebhookDeliveryRow_delivery\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Webhooks {\n    me {\n      id\n      webhookEndpoints {\n        id\n        ...WebhookEndpoint_endpoint\n      }\n    }\n  }\n"): (typeof documents)["\n  query Webhooks {\n    me {\n      id\n      webhookEndpoints {\n        id\n        ...WebhookEndpoint_endpoint\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {\n    createWebhookEndpoint(input: $input) {\n      secret\n      endpoint {\n        id\n        url\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {\n    createWebhookEndpoint(input: $input) {\n      secret\n      endpoint {\n        id\n        url\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteWebhookEndpoint($id: ID!) {\n    deleteWebhookEndpoint(id: $id) {\n      id\n    }\n  }\n"): (typeof documents)["\n  mutation DeleteWebhookEndpoint($id: ID!) {\n    deleteWebhookEndpoint(id: $id) {\n      id\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RedeliverWebhook($deliveryId: ID!) {\n    redeliverWebhook(deliveryId: $deliveryId) {\n      id\n      ...WebhookDeliveryRow_delivery\n    }\n  }\n"): (typeof documents)["\n  mutation RedeliverWebhook($deliveryId: ID!) {\n    redeliverWebhook(deliveryId: $deliveryId) {\n      id\n      ...WebhookDeliveryRow_delivery\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment PaymentConfigFields on PaymentConfig {\n    chainId\n    tokenAddress\n    tokenDecimals\n    treasuryAddress\n    confirmations\n    creditsPerToken\n    gaslessMinAmount\n  }\n"): (typeof documents)["\n  fragment PaymentConfigFields on PaymentConfig {\n    chainId\n    tokenAddress\n    tokenDecimals\n    treasuryAddress\n    confirmations\n    creditsPerToken\n    gaslessMinAmount\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me {\n    me {\n      id\n      walletAddress\n      balance\n    }\n  }\n"): (typeof documents)["\n  query Me {\n    me {\n      id\n      walletAddress\n      balance\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SiweChallenge($address: Address!, $chainId: Int!) {\n    siweChallenge(address: $address, chainId: $chainId)\n  }\n"): (typeof documents)["\n  mutation SiweChallenge($address: Address!, $chainId: Int!) {\n    siweChallenge(address: $address, chainId: $chainId)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SignIn($message: String!, $signature: String!) {\n    signIn(message: $message, signature: $signature) {\n      expiresAt\n      account {\n        id\n        walletAddress\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation SignIn($message: String!, $signature: String!) {\n    signIn(message: $message, signature: $signature) {\n      expiresAt\n      account {\n        id\n        walletAddress\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SignOut {\n    signOut\n  }\n"): (typeof documents)["\n  mutation SignOut {\n    signOut\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RelayPayment($input: TransferAuthorizationInput!) {\n    relayPayment(input: $input) {\n      txHash\n      amountToken\n    }\n  }\n"): (typeof documents)["\n  mutation RelayPayment($input: TransferAuthorizationInput!) {\n    relayPayment(input: $input) {\n      txHash\n      amountToken\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;