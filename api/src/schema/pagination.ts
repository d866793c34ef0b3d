import type { Page } from '../db/cursor.ts';

/** A service page as a Relay connection; each node's cursor comes from `cursorOf`. */
export function toConnection<T>(page: Page<T>, cursorOf: (item: T) => string) {
  return {
    edges: page.entries.map((node) => ({ node, cursor: cursorOf(node) })),
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: false,
      startCursor: page.entries[0] ? cursorOf(page.entries[0]) : null,
      endCursor: page.endCursor,
    },
  };
}
