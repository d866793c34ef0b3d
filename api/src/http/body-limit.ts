/** The largest request body accepted: a GraphQL request over HTTP, a graphql-ws message, a `/v1` call. */
export const MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024;
