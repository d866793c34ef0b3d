/**
 * Named parameters for a statement with many values: its text refers to each value by name and the values
 * are given as an object, both mapped to `$1`.. in one fixed order, so no positional array has to be kept
 * in step with the text.
 *
 * @example
 * const p = namedParameters(['ids', 'now'] as const);
 * const text = `update t set seen_at = ${p.$.now}::timestamptz where id = any(${p.$.ids}::uuid[])`;
 * await sql.query({ name: 'cm_touch', text }, p.values({ ids, now: now.toISOString() }));
 */
export interface NamedParameters<Name extends string> {
  /** Each name's placeholder (`$1`..), for the statement's text. */
  readonly $: Readonly<Record<Name, string>>;
  /** The values in placeholder order. */
  values(values: Readonly<Record<Name, unknown>>): unknown[];
}

export function namedParameters<const Name extends string>(names: readonly Name[]): NamedParameters<Name> {
  if (new Set(names).size !== names.length)
    throw new Error(`a parameter is named twice: ${names.join(', ')}`);
  const placeholders = Object.fromEntries(names.map((name, index) => [name, `$${index + 1}`]));
  return {
    $: placeholders as Record<Name, string>,
    values: (values) => names.map((name) => values[name]),
  };
}
