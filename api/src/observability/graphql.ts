/**
 * GraphQL metrics: yoga's own (`@graphql-yoga/plugin-prometheus`: operations, durations, errors by phase)
 * on the API's registry, without the operation-name label (client-chosen, so unbounded), plus errors
 * counted by their `extensions.code` as clients receive them (after masking).
 */
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { AppMetrics } from './metrics.ts';

/** Codes are server-defined, but bound the label anyway (a plugin could put anything there). */
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,47}$/;

function errorCodeOf(error: Pick<GraphQLError, 'extensions'>): string {
  const code = error.extensions?.code;
  if (typeof code !== 'string') return 'INTERNAL_SERVER_ERROR';
  return CODE_PATTERN.test(code) ? code : 'OTHER';
}

export function graphqlMetricsPlugins(metrics: AppMetrics): Plugin[] {
  const countErrors: Plugin = {
    onResultProcess({ result }) {
      const results = Array.isArray(result) ? result : [result];
      for (const item of results) {
        // Subscriptions (async iterables) stream their events; their setup errors arrive as results.
        const errors = (item as { errors?: readonly GraphQLError[] } | null)?.errors;
        if (!errors) continue;
        for (const error of errors) metrics.graphqlErrors.inc({ code: errorCodeOf(error) });
      }
    },
  };
  return [
    usePrometheus({
      registry: metrics.registry,
      endpoint: false,
      skipIntrospection: true,
      metrics: {
        graphql_envelop_request: true,
        graphql_envelop_request_duration: true,
        graphql_envelop_error_result: true,
        // Parsing and validation are cached per document (yoga's parser and validation cache): their
        // histograms timed cache hits, and yoga's HTTP duration repeats `chainmeter_http_request_duration_seconds`
        // (by route), copying the request's whole context on every response to do it. The three cost about 2%
        // of the API's CPU on the ledger read path; execution keeps its own.
        graphql_envelop_phase_parse: false,
        graphql_envelop_phase_validate: false,
        graphql_envelop_phase_execute: true,
        graphql_yoga_http_duration: false,
        // On by default: a summary (a t-digest per label set, updated on every request) of the same time as
        // `graphql_envelop_request_duration`'s histogram. Nothing reads it; 0.4% of the read path's CPU.
        graphql_envelop_request_time_summary: false,
        // The schema deprecates nothing, and this one walks every request's document to find out (about 1%
        // of the API's CPU on the ledger read path).
        graphql_envelop_deprecated_field: false,
        graphql_envelop_schema_change: false,
      },
      labels: {
        operationName: false,
        path: false,
        fieldName: false,
        typeName: false,
        url: false,
      },
    }),
    countErrors,
  ];
}
