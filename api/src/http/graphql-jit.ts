/**
 * Which queries graphql-jit may run (yoga.ts compiles queries with it: graphql-js's generic executor was most
 * of the CPU of a ledger page). Not a document that holds something graphql-jit 0.8 runs otherwise than
 * graphql-js, found by probing it:
 * - a variable with a default value: a non-null one (`$n: Int! = 5`) left out is refused as "not provided",
 *   and a custom scalar's default reaches the resolver unparsed (a DateTime as a string: a masked 500);
 * - a literal argument whose value parses to a bigint (`BigInt`, `Credits`): the compiler writes literals
 *   into the code it generates with `JSON.stringify`, which throws on a bigint, and the query failed as 500.
 * Such documents run on graphql-js, correctly and only less fast; the web client's and the audit CLI's
 * documents have neither. Decided once per parsed document (yoga caches those by their text).
 */
import {
  BREAK,
  type DocumentNode,
  type GraphQLSchema,
  getNamedType,
  isScalarType,
  isSpecifiedScalarType,
  TypeInfo,
  type ValueNode,
  visit,
  visitWithTypeInfo,
} from 'graphql';

const verdicts = new WeakMap<DocumentNode, boolean>();

/** Whether graphql-jit runs every operation of `document` exactly as graphql-js would. */
export function jitRunsAsGraphqlJs(schema: GraphQLSchema, document: DocumentNode): boolean {
  let verdict = verdicts.get(document);
  if (verdict === undefined) {
    verdict = !holdsWhatJitMisruns(schema, document);
    verdicts.set(document, verdict);
  }
  return verdict;
}

function holdsWhatJitMisruns(schema: GraphQLSchema, document: DocumentNode): boolean {
  const typeInfo = new TypeInfo(schema);
  let found = false;
  const scalarLiteral = (node: ValueNode) => {
    const type = getNamedType(typeInfo.getInputType());
    if (!type || !isScalarType(type) || isSpecifiedScalarType(type)) return;
    if (parsesToBigInt(() => type.parseLiteral(node))) {
      found = true;
      return BREAK;
    }
  };
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      VariableDefinition(node) {
        if (node.defaultValue) {
          found = true;
          return BREAK;
        }
        // Its type names no value: nothing below it is a literal argument.
        return false;
      },
      StringValue: scalarLiteral,
      IntValue: scalarLiteral,
      FloatValue: scalarLiteral,
    }),
  );
  return found;
}

function parsesToBigInt(parse: () => unknown): boolean {
  try {
    return typeof parse() === 'bigint';
  } catch {
    // A literal its scalar refuses never gets this far: validation refused the document.
    return false;
  }
}
