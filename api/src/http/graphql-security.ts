/**
 * The GraphQL endpoint's defences against hostile input, in one place (the threat model and its tests:
 * docs/security.md, api/test/security.test.ts):
 * - graphql-armor limits (tokens at parse time; depth, aliases, cost, directives at validation time), so a
 *   hostile document is refused before any resolver or database query runs. Rejections carry
 *   `extensions.code: BAD_USER_INPUT`; in production their messages name no limit.
 * - introspection: on in development and test, off in production unless `GRAPHQL_INTROSPECTION=true`
 *   (clients are generated from the checked-in `schema/schema.graphql`, not from introspection);
 * - CORS: none by default (the web client is same-origin, integrators call from servers); `CORS_ORIGINS`
 *   allows exact origins, never with credentials, so the session cookie never rides a cross-origin call;
 * - a request body cap (HTTP and graphql-ws messages); batched (array) bodies are refused (yoga's default).
 */
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import {
  type DocumentNode,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  parse,
  type ValidationContext,
  validate,
  visit,
} from 'graphql';
import { isAsyncIterable, type Plugin, type YogaServerOptions } from 'graphql-yoga';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { LRUCache } from 'lru-cache';
import type { ApiConfig } from '../env.ts';
import { badInput } from '../errors.ts';
import { MAX_REQUEST_BODY_BYTES } from './body-limit.ts';
import { hasNodeRequest } from './node-request.ts';

/** The armor limits. Legitimate queries of the web client and the audit CLI stay far below them. */
export const GRAPHQL_LIMITS = {
  depth: 12,
  aliases: 20,
  cost: 25_000,
  tokens: 2_000,
  directives: 20,
} as const;

/**
 * Gives an armor rejection the `BAD_USER_INPUT` code of docs/api.md and reports it as an ordinary validation
 * error (so HTTP and graphql-ws answer it alike, with every other validation error, and nothing executes).
 * The token limit fires inside the parser, where there is no validation context: it throws instead.
 */
function rejectAsBadInput(context: ValidationContext | null, error: GraphQLError): void {
  (error.extensions as Record<string, unknown>).code = 'BAD_USER_INPUT';
  context?.reportError(error);
}

/** The armor cost rule's options: the literal check at validation and the variable check below share them. */
function costLimitOptions(config: Pick<ApiConfig, 'env'>) {
  return {
    exposeLimits: config.env !== 'production',
    onReject: [rejectAsBadInput],
    propagateOnRejection: false,
    maxCost: GRAPHQL_LIMITS.cost,
    errorMessage: 'Query too expensive.',
  };
}

export function graphqlArmor(config: Pick<ApiConfig, 'env'>): Plugin {
  const exposeLimits = config.env !== 'production';
  const validationRule = { exposeLimits, onReject: [rejectAsBadInput], propagateOnRejection: false };
  return EnvelopArmorPlugin({
    maxDepth: { ...validationRule, n: GRAPHQL_LIMITS.depth, errorMessage: 'Query too deep.' },
    maxAliases: { ...validationRule, n: GRAPHQL_LIMITS.aliases, errorMessage: 'Too many aliases.' },
    costLimit: costLimitOptions(config),
    maxDirectives: { ...validationRule, n: GRAPHQL_LIMITS.directives, errorMessage: 'Too many directives.' },
    maxTokens: {
      exposeLimits,
      n: GRAPHQL_LIMITS.tokens,
      errorMessage: 'Query too long.',
      onReject: [rejectAsBadInput],
      propagateOnRejection: true,
    },
    // "Did you mean ...?" would map the schema for an attacker whom introspection is refused to.
    blockFieldSuggestion: { enabled: config.env === 'production' },
  }) as Plugin;
}

/**
 * A malformed request is answered like yoga answers a POST body that is not JSON (400, `BAD_REQUEST`): yoga's
 * GET and form parsers hand `variables` and `extensions` to `JSON.parse` unguarded, so their SyntaxError
 * was masked as a 500, and its multipart parser's refusals carry no code.
 */
export function malformedRequestAsBadRequest(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      // None: an unsupported content type, which yoga answers with 415 itself.
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (error instanceof SyntaxError)
            throw badRequest("The request's variables or extensions are not valid JSON");
          if (error instanceof GraphQLError && error.extensions.code === undefined)
            throw badRequest(error.message);
          throw error;
        }
      });
    },
  };
}

/**
 * Variables that do not coerce (a string sent for `$n: Int`, a required one left out, an input field its type
 * does not have) are invalid arguments: `BAD_USER_INPUT`, as docs/api.md says and as a custom scalar's own
 * refusal already is. graphql-js and graphql-jit report them with no code at all. They are the errors of a
 * result without `data` (nothing ran); one that wraps an unexpected error is left to the mask.
 */
export function uncoercedVariablesAsBadInput(): Plugin {
  return {
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          if (isAsyncIterable(result) || result.data !== undefined || !result.errors) return;
          if (result.errors.every((error) => !isUncoercedVariable(error))) return;
          setResult({ ...result, errors: result.errors.map(asBadInput) });
        },
      };
    },
  };
}

function isUncoercedVariable(error: GraphQLError): boolean {
  const cause = error.originalError;
  // graphql-jit's errors have no `extensions` at all.
  const code = (error.extensions as GraphQLError['extensions'] | undefined)?.code;
  return code === undefined && (cause === undefined || cause instanceof GraphQLError);
}

function asBadInput(error: GraphQLError): GraphQLError {
  if (!isUncoercedVariable(error)) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    // A 400 where GraphQL over HTTP allows it (application/graphql-response+json), like validation errors.
    extensions: { ...error.extensions, code: 'BAD_USER_INPUT', http: { status: 400, spec: true } },
  });
}

const badRequest = (message: string) =>
  new GraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });

/** Introspection per `config.security.introspection`; an empty list when it stays on. */
export function introspectionPolicy(config: Pick<ApiConfig, 'security'>): Plugin[] {
  return config.security.introspection ? [] : [useDisableIntrospection()];
}

/** Yoga's `cors` option: off unless origins are listed, and then without credentials. */
export function corsPolicy(config: Pick<ApiConfig, 'security'>): YogaServerOptions<object, object>['cors'] {
  const origins = config.security.corsOrigins;
  if (origins.length === 0) return false;
  return {
    origin: origins,
    credentials: false,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type', 'authorization'],
    maxAge: 600,
  };
}

/**
 * Refuses a larger body with 413 and a GraphQL-shaped error, before yoga reads it. A request served by Node
 * is left to the route, which reads its body from Node's request with the same limit and answer
 * ({@link graphqlBodyTooLarge}): reading it here would build a WHATWG Request for it.
 */
export function graphqlBodyLimit(): MiddlewareHandler {
  const limit = bodyLimit({ maxSize: MAX_REQUEST_BODY_BYTES, onError: graphqlBodyTooLarge });
  return (c, next) => (hasNodeRequest(c) ? next() : limit(c, next));
}

/** The 413 of a GraphQL request whose body passes {@link MAX_REQUEST_BODY_BYTES}. */
export function graphqlBodyTooLarge(c: Context): Response {
  return c.json(
    {
      errors: [
        {
          message: `Request body too large: the limit is ${MAX_REQUEST_BODY_BYTES} bytes`,
          extensions: { code: 'BAD_USER_INPUT' },
        },
      ],
    },
    413,
  );
}

/** `first: $n` or `last: $n` somewhere in the text: only then can variables change the cost. */
const PAGE_SIZE_VARIABLE = /\b(?:first|last)\s*:\s*\$([_A-Za-z][_0-9A-Za-z]*)/g;

/**
 * The cost limit with the variables' values: armor's cost rule multiplies a list's cost by `first` (or
 * `last`) only when it is a literal, and validation (cached per document by yoga) never sees variables,
 * so `ledger(first: $n)` would cost as `first: 1`. This inlines each `first`/`last` variable's value (or
 * its default) as the literal it stands for and runs the same rule, with the same limit and message, on
 * the result. Returns the refusal (BAD_USER_INPUT), or an empty list when the operation fits.
 */
export function variableCostErrors(
  config: Pick<ApiConfig, 'env'>,
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
): readonly GraphQLError[] {
  let inlined = false;
  const withValues = visit(document, {
    OperationDefinition(operation) {
      const values = new Map<string, unknown>();
      for (const definition of operation.variableDefinitions ?? []) {
        const name = definition.variable.name.value;
        if (variables && Object.hasOwn(variables, name)) values.set(name, variables[name]);
        else if (definition.defaultValue?.kind === Kind.INT) values.set(name, definition.defaultValue.value);
      }
      return visit(operation, {
        Argument(argument) {
          if (argument.name.value !== 'first' && argument.name.value !== 'last') return undefined;
          if (argument.value.kind !== Kind.VARIABLE) return undefined;
          const value = values.get(argument.value.name.value);
          const text = typeof value === 'number' && Number.isInteger(value) ? String(value) : value;
          // Anything but an integer is refused by Int's own coercion before a resolver runs.
          if (typeof text !== 'string' || !/^-?\d+$/.test(text)) return undefined;
          inlined = true;
          return { ...argument, value: { kind: Kind.INT, value: text } };
        },
      });
    },
  });
  if (!inlined) return [];
  return validate(schema, withValues, [costLimitRule(costLimitOptions(config))]);
}

/**
 * PostgreSQL `text` cannot hold U+0000, so a string carrying it fails the statement it reaches, as a
 * masked error. Refused up front as bad input, in the variables and in the document's string literals.
 */
export function nulCharacterErrors(query: string | null | undefined, variables: unknown): GraphQLError[] {
  return holdsNul(variables, 0) || (query && literalHoldsNul(query)) ? [nulCharacterError()] : [];
}

const nulCharacterError = () => badInput('Text may not contain the NUL character (U+0000)');

/** Whether a string literal of the document holds U+0000. */
function literalHoldsNul(query: string): boolean {
  // Only a raw NUL or a unicode escape can put one in a literal: parse only then.
  if (!query.includes('\u0000') && !/\\u/i.test(query)) return false;
  let found = false;
  try {
    visit(parse(query, { maxTokens: GRAPHQL_LIMITS.tokens }), {
      StringValue(node) {
        if (node.value.includes('\u0000')) found = true;
      },
    });
  } catch {
    // yoga's own parse answers a document that does not parse
  }
  return found;
}

function holdsNul(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000') || holdsNul(item, depth + 1)) return true;
  }
  return false;
}

/**
 * {@link nulCharacterErrors} and {@link variableCostErrors} on GraphQL over HTTP, before the document is
 * executed and before the request is authenticated (graphql-ws calls them in its own onSubscribe,
 * server.ts).
 */
export function variableInputLimits(config: Pick<ApiConfig, 'env'>, schema: GraphQLSchema): Plugin {
  // What each document's text says, read once per document (the web client and integrators send the same
  // few): the variables its page sizes come from, whether a literal holds NUL, and the cost verdict for
  // each combination of page sizes seen, not a parse per request.
  // Bounded by the documents' text too: a body may be up to 4 MiB, and a larger one than the cap is not kept.
  const documents = new LRUCache<string, DocumentFacts>({
    max: 1_000,
    maxSize: 8 * 1024 * 1024,
    sizeCalculation: (_facts, query) => query.length,
  });
  return {
    onParams({ params, setResult }) {
      const { query } = params;
      // No variables at all still leaves their defaults (`$n: Int = 1000`).
      const variables = params.variables ?? {};
      // Not a string (`"query": 5`): yoga's own parameter check, which runs next, answers it with a 400.
      if (typeof query !== 'string' || !query) {
        if (holdsNul(params.variables, 0)) setResult({ errors: [nulCharacterError()] });
        return;
      }
      let facts = documents.get(query);
      if (!facts) {
        facts = {
          pageSizeVariables: [...query.matchAll(PAGE_SIZE_VARIABLE)].map(([, name]) => name as string),
          literalHoldsNul: literalHoldsNul(query),
          verdicts: new Map(),
        };
        documents.set(query, facts);
      }
      if (facts.literalHoldsNul || holdsNul(params.variables, 0)) {
        return setResult({ errors: [nulCharacterError()] });
      }
      if (facts.pageSizeVariables.length === 0) return;
      const key = JSON.stringify(facts.pageSizeVariables.map((name) => variables[name]));
      let errors = facts.verdicts.get(key);
      if (!errors) {
        let document: DocumentNode;
        try {
          document = parse(query, { maxTokens: GRAPHQL_LIMITS.tokens });
        } catch {
          return; // yoga's own parse answers it, with the token limit's message
        }
        errors = variableCostErrors(config, schema, document, variables);
        // Page sizes are the caller's to choose: a bounded set per document.
        if (facts.verdicts.size >= MAX_VERDICTS_PER_DOCUMENT) facts.verdicts.clear();
        facts.verdicts.set(key, errors);
      }
      if (errors.length > 0) setResult({ errors: [...errors] });
    },
  };
}

interface DocumentFacts {
  /** The names of the variables of its `first: $n` and `last: $n`, in the text's order. */
  pageSizeVariables: string[];
  literalHoldsNul: boolean;
  /** The cost limit's errors (none when it fits) by the page sizes' values (JSON). */
  verdicts: Map<string, readonly GraphQLError[]>;
}

const MAX_VERDICTS_PER_DOCUMENT = 64;
