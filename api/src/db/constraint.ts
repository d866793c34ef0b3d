/**
 * The name of the constraint a database error violated, or null: PostgreSQL reports it in the error's
 * `constraint` field (node-postgres and PGlite alike); MikroORM's exceptions copy the driver error's fields
 * or keep it as `cause`. Callers compare it with the constraint's name, never search the message.
 */
export function violatedConstraint(error: unknown): string | null {
  for (let current = error, depth = 0; current instanceof Object && depth < 4; depth++) {
    const constraint = (current as { constraint?: unknown }).constraint;
    if (typeof constraint === 'string') return constraint;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}
