/**
 * Chat with a model, billed to the balance: each answer shows its tokens and its price, and the
 * balance (in the navigation bar) moves as the usage is settled.
 */

import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { type FormEvent, type KeyboardEvent, useEffect, useId, useRef, useState } from 'react';
import { useClient, useMutation } from 'urql';
import { graphql } from '../gql';
import type { CreateCompletionMutation as CompletionResult } from '../gql/graphql';
import { describeGraphqlError } from '../lib/errors';
import { creditsToUsd, displayCredits } from '../lib/format';
import { useLive } from '../live/live';
import { Link } from '../router';

const CreateCompletionMutation = graphql(`
  mutation CreateCompletion($input: CompletionInput!) {
    createCompletion(input: $input) {
      id
      model
      content
      usage {
        id
        promptTokens
        completionTokens
        userPrice
        billingStatus
      }
    }
  }
`);

const BalanceQuery = graphql(`
  query PlaygroundBalance {
    me {
      id
      balance
    }
  }
`);

const FALLBACK_MODELS = ['chainmeter-dev'];
/** The API's bound on a call's output tokens (api/src/modules/metering/chat-request.ts). */
const MAX_OUTPUT_TOKENS = 1_000_000;

type Turn =
  | { key: string; role: 'user'; content: string }
  | { key: string; role: 'assistant'; content: string; completion: CompletionResult['createCompletion'] };

let turnCounter = 0;
const nextTurnKey = () => `turn-${++turnCounter}`;

function useModels(): string[] {
  const [models, setModels] = useState<string[]>(FALLBACK_MODELS);
  useEffect(() => {
    const controller = new AbortController();
    fetch('/v1/models', { credentials: 'same-origin', signal: controller.signal })
      .then((response) => (response.ok ? response.json() : null))
      .then((body: { data?: { id: string }[] } | null) => {
        const ids = body?.data?.map((model) => model.id).filter((name) => !name.startsWith('dev-'));
        if (ids?.length) setModels(ids);
      })
      .catch(() => {});
    return () => controller.abort();
  }, []);
  return models;
}

export function PlaygroundPage() {
  const id = useId();
  const models = useModels();
  const [model, setModel] = useState(FALLBACK_MODELS[0] as string);
  const [maxTokens, setMaxTokens] = useState('256');
  const [prompt, setPrompt] = useState('');
  const [turns, setTurns] = useState<Turn[]>([]);
  const [error, setError] = useState<{ message: string; insufficient: boolean } | null>(null);
  const [{ fetching }, complete] = useMutation(CreateCompletionMutation);
  /** Balance reads in flight after completions: the chat stays busy until the balance has followed. */
  const [balanceReads, setBalanceReads] = useState(0);
  const client = useClient();
  const live = useLive();
  const endRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!models.includes(model)) setModel(models[0] as string);
  }, [models, model]);
  // Block body: newer browsers return a Promise from scrollIntoView, which React would take for a cleanup.
  useEffect(() => {
    if (turns.length > 0) endRef.current?.scrollIntoView?.({ block: 'nearest' });
  }, [turns.length]);

  const send = async (event?: FormEvent) => {
    event?.preventDefault();
    const content = prompt.trim();
    if (!content || fetching) return;
    // Empty: the API's default. Past the API's bound a number is refused here, with the field's name: the
    // API would answer a figure beyond 32 bits with GraphQL's own coercion message.
    const tokens = maxTokens === '' ? null : Number(maxTokens);
    if (tokens !== null && !(tokens >= 1 && tokens <= MAX_OUTPUT_TOKENS)) {
      setError({ message: 'Max tokens is a whole number from 1 to 1,000,000.', insufficient: false });
      return;
    }
    setError(null);
    const history: Turn[] = [...turns, { key: nextTurnKey(), role: 'user', content }];
    setTurns(history);
    setPrompt('');
    const result = await complete({
      input: {
        model,
        messages: history.map((turn) => ({ role: turn.role, content: turn.content })),
        maxTokens: tokens,
      },
    });
    if (!result.data) {
      setError({
        message: result.error ? describeGraphqlError(result.error) : 'The API gave no answer.',
        insufficient: result.error?.graphQLErrors[0]?.extensions?.code === 'INSUFFICIENT_CREDITS',
      });
      setTurns(turns);
      setPrompt(content);
      return;
    }
    const completion = result.data.createCompletion;
    setTurns([
      ...history,
      { key: completion.id, role: 'assistant', content: completion.content, completion },
    ]);
    // The balanceUpdated subscription moves the balance too; this read covers a missed event (and gives
    // way to any event heard while it is in flight: that is newer).
    setBalanceReads((count) => count + 1);
    try {
      await live.refreshBalance(async () => {
        const fresh = await client.query(BalanceQuery, {}, { requestPolicy: 'network-only' }).toPromise();
        return fresh.data?.me?.balance;
      });
    } finally {
      setBalanceReads((count) => count - 1);
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && (event.metaKey || event.ctrlKey)) void send();
  };

  const chatCost = turns.reduce(
    (sum, turn) => (turn.role === 'assistant' ? sum + parseCredits(turn.completion.usage.userPrice) : sum),
    0n,
  );

  return (
    <div className="page">
      <section className="card playground" aria-labelledby="playground-title">
        <div className="card-head">
          <h1 id="playground-title">Playground</h1>
          {turns.length > 0 && (
            <span className="row">
              <span className="muted small" data-testid="chat-cost">
                This chat: {displayCredits(formatCredits(chatCost as MicroUsd))} credits
              </span>
              <button type="button" className="ghost" onClick={() => setTurns([])}>
                New chat
              </button>
            </span>
          )}
        </div>
        <div className="row settings">
          <div className="field">
            <label htmlFor={`${id}-model`}>Model</label>
            <select id={`${id}-model`} value={model} onChange={(event) => setModel(event.target.value)}>
              {models.map((name) => (
                <option key={name}>{name}</option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={`${id}-max`}>Max tokens</label>
            <input
              id={`${id}-max`}
              inputMode="numeric"
              value={maxTokens}
              onChange={(event) => setMaxTokens(event.target.value.replace(/\D/g, ''))}
              size={6}
            />
          </div>
        </div>
        <div className="chat" aria-live="polite" aria-busy={fetching || balanceReads > 0}>
          {turns.length === 0 && (
            <div className="empty-state">Ask anything. Each answer shows its tokens and what it cost.</div>
          )}
          {turns.map((turn) => (
            <div key={turn.key} className={`bubble bubble-${turn.role}`} data-testid={`turn-${turn.role}`}>
              <div className="bubble-text">{turn.content}</div>
              {turn.role === 'assistant' && (
                <div className="bubble-meta" data-testid="completion-meta">
                  {turn.completion.model} · {turn.completion.usage.promptTokens} in +{' '}
                  {turn.completion.usage.completionTokens} out tokens ·{' '}
                  <strong>{displayCredits(turn.completion.usage.userPrice)} credits</strong> (
                  {creditsToUsd(turn.completion.usage.userPrice)})
                  {turn.completion.usage.billingStatus === 'NEEDS_REVIEW' && (
                    <span className="badge badge-pending"> price under review</span>
                  )}
                </div>
              )}
            </div>
          ))}
          {fetching && (
            <div className="bubble bubble-assistant">
              <span className="spinner" aria-hidden="true" /> Thinking…
            </div>
          )}
          <div ref={endRef} />
        </div>
        {error && (
          <p className="alert alert-error" role="alert">
            <span>{error.message}</span>
            {error.insufficient && <Link to="/buy">Buy credits</Link>}
          </p>
        )}
        <form className="composer" onSubmit={send}>
          <label htmlFor={`${id}-prompt`} className="visually-hidden">
            Message
          </label>
          <textarea
            id={`${id}-prompt`}
            rows={3}
            value={prompt}
            placeholder="Write a message… (Ctrl+Enter to send)"
            onChange={(event) => setPrompt(event.target.value)}
            onKeyDown={onKeyDown}
          />
          <button type="submit" className="primary" disabled={fetching || !prompt.trim()}>
            {fetching ? 'Sending…' : 'Send'}
          </button>
        </form>
      </section>
    </div>
  );
}
