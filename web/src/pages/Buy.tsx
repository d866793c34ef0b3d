/**
 * Buy credits: pick an amount, send the USDC transfer to the treasury from the wallet (or, without ETH for
 * gas, sign an authorization that the platform's relayer submits), and follow it live from "sent" through
 * its confirmations to "credited". Nothing here credits anything: the API does, from indexed chain data.
 */
import { usdcAbi } from '@chainmeter/schema';
import { useEffect, useId, useState } from 'react';
import type { Hash } from 'viem';
import { useAccount, useReadContract, useWaitForTransactionReceipt, useWriteContract } from 'wagmi';
import { DepositProgress, TxLink } from '../components/DepositProgress';
import { describeWalletError } from '../lib/errors';
import { displayCredits, displayUsd } from '../lib/format';
import { quotePurchase } from '../lib/purchase';
import { useLive } from '../live/live';
import { usePaymentConfig } from '../payment-config';
import { Link } from '../router';
import { RelayRefused, useGaslessTopUp } from '../wallet/gasless';

const PRESETS = ['5', '10', '25', '100'] as const;

export function BuyPage() {
  const config = usePaymentConfig();
  const { address } = useAccount();
  const amountId = useId();
  const [amount, setAmount] = useState<string>('10');
  const [sendError, setSendError] = useState<string | null>(null);
  const [sent, setSent] = useState<{ hash: Hash; credits: string; gasless: boolean } | null>(null);
  const gasless = useGaslessTopUp({
    chainId: config.chainId,
    token: config.tokenAddress,
    treasury: config.treasuryAddress,
  });
  const gaslessMin = config.gaslessMinAmount === null ? null : BigInt(config.gaslessMinAmount);
  const { writeContractAsync, isPending } = useWriteContract();
  const tokenBalance = useReadContract({
    address: config.tokenAddress,
    abi: usdcAbi,
    functionName: 'balanceOf',
    args: address ? [address] : undefined,
    chainId: config.chainId,
    query: { enabled: Boolean(address) },
  });

  const quote = quotePurchase(amount, config.tokenDecimals, config.creditsPerToken);
  const balanceUnits = tokenBalance.data;
  const insufficient = quote.ok && balanceUnits !== undefined && balanceUnits < quote.purchase.units;
  const toMicroUsd = (units: bigint) =>
    config.tokenDecimals >= 6
      ? units / 10n ** BigInt(config.tokenDecimals - 6)
      : units * 10n ** BigInt(6 - config.tokenDecimals);
  const balanceMicroUsd = balanceUnits === undefined ? undefined : toMicroUsd(balanceUnits);
  const belowGaslessMin = gaslessMin !== null && quote.ok && quote.purchase.units < gaslessMin;

  const send = async () => {
    if (!quote.ok) return;
    setSendError(null);
    try {
      const hash = await writeContractAsync({
        address: config.tokenAddress,
        abi: usdcAbi,
        functionName: 'transfer',
        args: [config.treasuryAddress, quote.purchase.units],
        chainId: config.chainId,
      });
      setSent({ hash, credits: quote.purchase.credits, gasless: false });
    } catch (failure) {
      setSendError(describeWalletError(failure));
    }
  };

  const sendGasless = async () => {
    if (!quote.ok) return;
    setSendError(null);
    try {
      const hash = await gasless.pay(quote.purchase.units);
      setSent({ hash, credits: quote.purchase.credits, gasless: true });
    } catch (failure) {
      setSendError(failure instanceof RelayRefused ? failure.message : describeWalletError(failure));
    }
  };

  return (
    <div className="page">
      <section className="card" aria-labelledby="buy-title">
        <h1 id="buy-title">Buy credits</h1>
        <p className="muted">
          1 USDC buys {displayCredits(config.creditsPerToken)} credits. Your credits arrive once the transfer
          has {config.confirmations} confirmations.
        </p>
        <fieldset className="presets">
          <legend>Amount</legend>
          <div className="preset-row">
            {PRESETS.map((preset) => (
              <button
                key={preset}
                type="button"
                className={amount === preset ? 'preset selected' : 'preset'}
                aria-pressed={amount === preset}
                onClick={() => setAmount(preset)}
              >
                ${preset}
              </button>
            ))}
          </div>
          <label htmlFor={amountId} className="field-label">
            Custom amount (USD)
          </label>
          <div className="input-prefix">
            <span aria-hidden="true">$</span>
            <input
              id={amountId}
              inputMode="decimal"
              autoComplete="off"
              value={amount}
              onChange={(event) => setAmount(event.target.value)}
              aria-invalid={!quote.ok}
              aria-describedby={`${amountId}-quote`}
            />
          </div>
        </fieldset>
        <div id={`${amountId}-quote`} className="quote" aria-live="polite">
          {quote.ok ? (
            <>
              You pay <strong>{displayUsd(quote.purchase.microUsd)} USDC</strong> and get{' '}
              <strong data-testid="quote-credits">{displayCredits(quote.purchase.credits)} credits</strong>.
            </>
          ) : (
            <span className="field-error">{quote.reason}</span>
          )}
        </div>
        <p className="muted small" data-testid="usdc-balance">
          Wallet balance:{' '}
          {tokenBalance.isLoading
            ? 'checking…'
            : tokenBalance.error
              ? 'unknown (the RPC did not answer)'
              : balanceMicroUsd !== undefined
                ? `${displayUsd(balanceMicroUsd)} USDC`
                : '—'}
        </p>
        {insufficient && (
          <p className="alert alert-error" role="alert">
            Your wallet holds too little USDC for this amount.
          </p>
        )}
        <button
          type="button"
          className="primary big"
          disabled={!quote.ok || insufficient || isPending}
          onClick={send}
        >
          {isPending
            ? 'Confirm in your wallet…'
            : quote.ok
              ? `Pay ${displayUsd(quote.purchase.microUsd)} USDC`
              : 'Pay'}
        </button>
        {gaslessMin !== null && (
          <div className="gasless">
            <button
              type="button"
              className="big"
              disabled={!quote.ok || insufficient || belowGaslessMin || gasless.busy || !gasless.ready}
              onClick={sendGasless}
            >
              {gasless.signing
                ? 'Sign in your wallet…'
                : gasless.busy
                  ? 'Submitting…'
                  : quote.ok
                    ? `Pay ${displayUsd(quote.purchase.microUsd)} USDC without gas`
                    : 'Pay without gas'}
            </button>
            <p className="muted small" data-testid="gasless-note">
              No ETH? Sign a USDC authorization instead of sending a transaction: ChainMeter's relayer submits
              it and pays the network fee. From {displayUsd(toMicroUsd(gaslessMin))} USDC.
            </p>
            {belowGaslessMin && (
              <p className="field-error small">
                Paying without gas needs at least {displayUsd(toMicroUsd(gaslessMin))} USDC.
              </p>
            )}
          </div>
        )}
        {sendError && (
          <p className="alert alert-error" role="alert">
            {sendError}
          </p>
        )}
      </section>
      {sent && (
        <PaymentTracker key={sent.hash} hash={sent.hash} credits={sent.credits} gasless={sent.gasless} />
      )}
    </div>
  );
}

/** Follows one transfer (sent by the wallet, or relayed): sent, mined, pending n/N, credited. */
function PaymentTracker({ hash, credits, gasless }: { hash: Hash; credits: string; gasless: boolean }) {
  const config = usePaymentConfig();
  const live = useLive();
  const { follow } = live;
  // A reconnection's catch-up brings this deposit even if it was mined and credited while the streams were down.
  useEffect(() => follow(hash), [follow, hash]);
  const receipt = useWaitForTransactionReceipt({ hash, chainId: config.chainId });
  const deposit = [...live.deposits.values()].find((d) => d.txHash.toLowerCase() === hash.toLowerCase());
  const reverted = receipt.data?.status === 'reverted';
  const [startedAt] = useState(() => Date.now());
  const [, tick] = useState(0);
  useEffect(() => {
    if (deposit?.status === 'CREDITED') return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [deposit?.status]);

  let step: 'sent' | 'pending' | 'credited' | 'failed' = 'sent';
  if (reverted || deposit?.status === 'REORGED') step = 'failed';
  else if (deposit?.status === 'CREDITED') step = 'credited';
  else if (deposit) step = 'pending';

  return (
    <section
      className="card tracker"
      aria-labelledby="tracker-title"
      data-testid="payment-tracker"
      data-step={step}
    >
      <h2 id="tracker-title">{gasless ? 'Your payment (relayed, no gas)' : 'Your payment'}</h2>
      <ol className="steps">
        <li className={step === 'sent' ? 'current' : 'done'}>Sent</li>
        <li className={step === 'pending' ? 'current' : step === 'credited' ? 'done' : ''}>Confirming</li>
        <li className={step === 'credited' ? 'done' : ''}>Credited</li>
      </ol>
      <p className="muted small">
        Transaction <TxLink chainId={config.chainId} txHash={hash} />
        {receipt.data && receipt.data.status === 'success' && (
          <> · mined in block {receipt.data.blockNumber.toString()}</>
        )}
      </p>
      <div role="status" aria-live="polite" data-testid="payment-status">
        {step === 'sent' && (
          <p>
            <span className="spinner" aria-hidden="true" /> Sent. Waiting for the chain to include it…{' '}
            <span className="muted small">{Math.round((Date.now() - startedAt) / 1000)} s</span>
          </p>
        )}
        {step === 'failed' && (
          <p className="alert alert-error">
            {reverted
              ? 'The transfer failed on chain (reverted). No USDC left your wallet and nothing was credited.'
              : 'The block holding this transfer was dropped by a chain reorganisation. Nothing was credited; send the payment again.'}
          </p>
        )}
        {deposit && step !== 'failed' && (
          <DepositProgress deposit={deposit.fragment} required={config.confirmations} />
        )}
        {step === 'credited' && (
          <p className="alert alert-ok">
            {displayCredits(credits)} credits are in your balance. <Link to="/">Back to the dashboard</Link>
          </p>
        )}
      </div>
      {receipt.error && step === 'sent' && (
        <p className="alert alert-error" role="alert">
          {describeWalletError(receipt.error)}
        </p>
      )}
    </section>
  );
}
