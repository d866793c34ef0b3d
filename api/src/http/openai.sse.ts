/** Server-sent events framing of a streamed completion for `POST /v1/chat/completions`. */
import type { Context } from 'hono';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { UsageView } from '../modules/metering/metering.service.ts';
import { hangUp } from './node-request.ts';

const encoder = new TextEncoder();
const event = (data: string) => encoder.encode(`data: ${data}\n\n`);

/**
 * A client that takes nothing for `ms` (it stopped reading and keeps its connection open): `hangUp` closes
 * its connection, which cancels the stream like any client that goes away.
 */
export interface StalledClient {
  ms: number;
  hangUp(): void;
}

/**
 * How long the client of request `c` may take nothing: as long as the upstream may stay silent
 * (`LLM_TIMEOUT_MS`); then its connection is closed.
 */
export const stalledClientOf = (c: Context, timeoutMs: number): StalledClient => ({
  ms: timeoutMs,
  hangUp: () => hangUp(c),
});

/**
 * The upstream's chunks as server-sent events. Pulled one chunk at a time, so a slow client slows the
 * upstream read (backpressure); a client that goes away cancels the stream, which leaves the upstream
 * loop early: generation stops and the call is billed for what was generated. A client that takes nothing
 * at all for `stalled.ms` is hung up on: else it would keep the upstream's connection, the call's hold (its
 * heartbeat extending it) and this stream open for as long as it keeps its own connection.
 */
export function completionEventStream(
  chunks: AsyncIterable<ChatCompletionChunk>,
  includeUsage: boolean,
  settled: Promise<UsageView | null>,
  stalled?: StalledClient,
): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  /** Runs while an event waits for the client to take it (no pull since it was queued). */
  let stallTimer: NodeJS.Timeout | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      clearTimeout(stallTimer);
      for (;;) {
        let next: IteratorResult<ChatCompletionChunk>;
        try {
          next = await iterator.next();
        } catch (error) {
          // The upstream broke off mid-answer: billed for what it had generated (nothing, if it had not
          // generated anything); tell the client which, in OpenAI's shape.
          const usage = await settled.catch(() => null);
          const message = `${(error as Error).message}; ${
            usage ? 'only the part generated before the break is billed' : 'nothing was charged'
          }`;
          controller.enqueue(
            event(
              JSON.stringify({
                error: { message, type: 'upstream_error', param: null, code: 'upstream_unavailable' },
              }),
            ),
          );
          controller.close();
          return;
        }
        if (next.done) {
          // [DONE] only once the charge is recorded, so a stream that completed is billed even if the
          // process dies right after it (the settlement itself never throws).
          await settled.catch(() => {});
          controller.enqueue(event('[DONE]'));
          controller.close();
          return;
        }
        const chunk = next.value;
        if (!includeUsage) {
          // The client did not ask for the usage chunk (the gateway always does, to bill).
          // A chunk may come without `choices` at all (a usage-only or junk chunk of a careless upstream).
          if (!chunk.choices?.length && chunk.usage) continue;
          if ('usage' in chunk) delete (chunk as { usage?: unknown }).usage;
        }
        controller.enqueue(event(JSON.stringify(chunk)));
        if (stalled) {
          stallTimer = setTimeout(stalled.hangUp, stalled.ms);
          stallTimer.unref();
        }
        return;
      }
    },
    async cancel() {
      clearTimeout(stallTimer);
      await iterator.return?.();
    },
  });
}
