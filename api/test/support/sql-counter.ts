import type { RunningApi } from '../../src/server.ts';

/** Counts every SQL statement an in-process API sends (MikroORM logs each one through this hook). */
export function countSql(api: RunningApi): { count: number } {
  const counter = { count: 0 };
  const logger = api.services.orm.config.getLogger();
  const logQuery = logger.logQuery.bind(logger);
  logger.logQuery = (context) => {
    counter.count++;
    logQuery(context);
  };
  return counter;
}
