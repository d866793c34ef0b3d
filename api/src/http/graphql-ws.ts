/**
 * GraphQL subscriptions (and operations) over graphql-ws on `/graphql`, run through the same yoga
 * envelope as HTTP: the same plugins, limits and context (the credential from `connectionParams`).
 */
import type { IncomingHttpHeaders, Server } from 'node:http';
import { type ExecutionArgs, type execute, GraphQLError, type subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { ApiConfig } from '../env.ts';
import { clientIpOf, type TrustedProxies } from '../modules/ratelimit/client-ip.ts';
import { MAX_REQUEST_BODY_BYTES } from './body-limit.ts';
import { nulCharacterErrors, variableCostErrors } from './graphql-security.ts';
import type { GraphqlServer } from './yoga.ts';

interface EnvelopedRoot {
  execute(args: ExecutionArgs): ReturnType<typeof execute>;
  subscribe(args: ExecutionArgs): ReturnType<typeof subscribe>;
}

interface GraphqlWebSocket {
  close(): Promise<void>;
}

export function serveGraphqlOverWebSocket(
  server: Server,
  yoga: GraphqlServer,
  config: ApiConfig,
  trustedProxies: TrustedProxies,
): GraphqlWebSocket {
  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: MAX_REQUEST_BODY_BYTES });
  const wsServer = useServer(
    {
      // onSubscribe below hands each operation yoga's enveloped execute/subscribe through rootValue.
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const {
          schema: envelopedSchema,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          connectionParams: ctx.connectionParams,
          clientIp: clientIpOf(
            ctx.extra.request.socket.remoteAddress,
            forwardedFor(ctx.extra.request.headers),
            trustedProxies,
          ),
        });
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error or the token limit: answer it as an error, not by dropping the socket.
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = validate(envelopedSchema, document);
        if (errors.length > 0) return errors;
        const inputErrors = [
          ...nulCharacterErrors(payload.query, payload.variables),
          ...variableCostErrors(config, envelopedSchema, document, payload.variables),
        ];
        if (inputErrors.length > 0) return inputErrors;
        return {
          schema: envelopedSchema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wss,
  );
  return {
    close: async () => {
      await wsServer.dispose();
      wss.close();
    },
  };
}

/** `X-Forwarded-For` of the upgrade request, repeated headers joined as one list. */
function forwardedFor(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['x-forwarded-for'];
  return Array.isArray(value) ? value.join(',') : value;
}
