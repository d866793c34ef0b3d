/** Server-sent events framing of a streamed completion for `POST /v1/chat/completions`. */
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { UsageView } from '../modules/metering/metering.service.ts';

const encoder = new TextEncoder();
const event = (data: string) => encoder.encode(`data: ${data}\n\n`);

/**
 * The upstream's chunks as server-sent events. Pulled one chunk at a time, so a slow client slows the
 * upstream read (backpressure); a client that goes away cancels the stream, which leaves the upstream
 * loop early: generation stops and the call is billed for what was generated.
 */
export function completionEventStream(
  chunks: AsyncIterable<ChatCompletionChunk>,
  includeUsage: boolean,
  settled: Promise<UsageView | null>,
): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
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
        return;
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
