/**
 * `POST /v1/chat/completions` paid per request (x402 v2), for a call without `Authorization` while x402 is on:
 * - no `PAYMENT-SIGNATURE`: 402 with `PAYMENT-REQUIRED` offering this call's maximum price (its hold);
 * - a payment that fails a check, or an `exact` settlement that fails: 402 with the reason in
 *   `PAYMENT-REQUIRED`'s `error` and in the body's `error.code`; nothing is served and nothing moves;
 * - a verified payment: served like a keyed call (JSON or server-sent events) with `PAYMENT-RESPONSE`
 *   (`exact`: settled before the upstream is called; `upto`: after the answer, for its price, so a
 *   streamed `upto` call has no `PAYMENT-RESPONSE`: its headers left before the price was known);
 * - an `exact` call that fails after its payment was settled (the upstream failed): the error, with
 *   `PAYMENT-RESPONSE` and a message saying the payment stays as the wallet's credits.
 */
import type { Context } from 'hono';
import type { AppServices } from '../context.ts';
import { parseChatRequest } from '../modules/metering/chat-request.ts';
import { METERING_PAYMENT_REFUSALS, PaymentRefusedError } from '../modules/metering/metering.errors.ts';
import type { X402Service } from '../modules/x402/x402.service.ts';
import { MAX_REQUEST_BODY_BYTES } from './body-limit.ts';
import { clientGoneSignal, readJsonBody, requestHeader } from './node-request.ts';
import { type OpenAiError, openAiError, openAiErrorFor } from './openai.errors.ts';
import { completionEventStream, stalledClientOf } from './openai.sse.ts';

export const PAYMENT_HEADERS = ['PAYMENT-REQUIRED', 'PAYMENT-RESPONSE'];

export async function paidCompletion(
  c: Context,
  services: AppServices,
  x402: X402Service,
): Promise<Response> {
  const { metering, logger } = services;
  const body = await readJsonBody(c, MAX_REQUEST_BODY_BYTES);
  if (!body.ok) {
    return openAiError(c, body.reason === 'too_large' ? 413 : 400, {
      message: body.reason === 'too_large' ? 'Request body too large' : 'The request body is not valid JSON',
      type: 'invalid_request_error',
      code: body.reason === 'too_large' ? 'body_too_large' : 'invalid_json',
    });
  }
  const resourceUrl = `${services.config.publicOrigin}/v1/chat/completions`;
  try {
    const request = parseChatRequest(body.value);
    const maxPrice = metering.quote(request);
    const signature = requestHeader(c, 'payment-signature');
    if (!signature) {
      return paymentRequired(
        c,
        x402,
        maxPrice,
        resourceUrl,
        'payment_required',
        'This call is paid per request',
      );
    }
    let verified: Awaited<ReturnType<X402Service['verifyPayment']>>;
    try {
      verified = await x402.verifyPayment(signature, maxPrice, resourceUrl);
    } catch (error) {
      if (!(error instanceof PaymentRefusedError)) throw error;
      return paymentRequired(
        c,
        x402,
        maxPrice,
        resourceUrl,
        error.reason,
        `Payment refused: ${error.reason}`,
      );
    }
    const signal = clientGoneSignal(c);
    const paymentResponse = (): Record<string, string> => {
      const settlement = verified.settlement();
      return settlement?.success ? { 'PAYMENT-RESPONSE': x402.paymentResponseHeader(settlement) } : {};
    };
    try {
      if (!request.stream) {
        const { completion, requestId } = await metering.completePaid(verified.payment, request, { signal });
        return c.json(completion, 200, { 'x-request-id': requestId, ...paymentResponse() });
      }
      const metered = await metering.streamPaid(verified.payment, request, { signal });
      const stalled = stalledClientOf(c, services.config.llm.timeoutMs);
      const events = completionEventStream(metered.chunks, request.includeUsage, metered.settled, stalled);
      return new Response(events, {
        status: 200,
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-request-id': metered.requestId,
          ...paymentResponse(),
        },
      });
    } catch (error) {
      if (!(error instanceof PaymentRefusedError)) {
        const settlement = verified.settlement();
        if (!settlement?.success) throw error;
        const receipt = x402.paymentResponseHeader(settlement);
        return openAiErrorFor(c, logger, error, (answer) => settledPaymentStays(answer, receipt));
      }
      if (METERING_PAYMENT_REFUSALS.has(error.reason)) x402.countRefused(verified.payment.scheme);
      return paymentRequired(c, x402, maxPrice, resourceUrl, error.reason, `Payment failed: ${error.reason}`);
    }
  } catch (error) {
    return openAiErrorFor(c, logger, error);
  }
}

/**
 * The error answer of an `exact` call that failed after its payment was settled (the upstream failed, or the
 * call was released): the call is not charged, but the money moved, and it stays as the payer's wallet credits.
 * The answer says so and carries `PAYMENT-RESPONSE`, the receipt of the transfer, as a served call's does.
 */
function settledPaymentStays(answer: OpenAiError, receipt: string): void {
  answer.message = `${answer.message}. Its payment was settled before the call (PAYMENT-RESPONSE): it stays as this wallet's credits (sign in to use them)`;
  answer.headers = { ...answer.headers, 'PAYMENT-RESPONSE': receipt };
}

async function paymentRequired(
  c: Context,
  x402: X402Service,
  maxPrice: Parameters<X402Service['paymentRequiredHeader']>[0],
  resourceUrl: string,
  code: string,
  message: string,
): Promise<Response> {
  const header = await x402.paymentRequiredHeader(
    maxPrice,
    resourceUrl,
    code === 'payment_required' ? undefined : code,
  );
  return openAiError(c, 402, {
    message,
    type: 'payment_required',
    code,
    headers: { 'PAYMENT-REQUIRED': header, 'cache-control': 'no-store' },
  });
}
