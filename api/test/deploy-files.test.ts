/**
 * The deployment files, checked with what `npm install` brings (no Docker, no docker-compose: nothing the
 * README does not name): docker-compose.yml is valid against the compose-spec JSON schema and has the
 * production shape (services, healthchecks, dependencies, environment the API accepts, mounted files that
 * exist), and the Prometheus alerts and the Grafana dashboard only use series the API exports, with a
 * runbook per alert.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { loadConfig } from '../src/env.ts';
import { createAppMetrics, registerPlatformGauges } from '../src/observability/metrics.ts';
import type { PlatformProbe } from '../src/observability/platform-probe.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface ComposeService {
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  stop_signal?: string;
  configs?: { source: string; target: string }[];
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  configs?: Record<string, { content?: string }>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;

const require = createRequire(import.meta.url);
/**
 * The compose-spec JSON schema (compose-spec/compose-spec `schema/compose-spec.json`, what `docker compose`
 * validates a file against), as the `dclint` package ships it (pinned: a new version may bring a newer
 * schema). Its `$schema` names draft-07 by its https URL, which Ajv knows under the http one.
 */
const composeSchema = JSON.parse(
  readFileSync(
    path.join(path.dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json'),
    'utf8',
  ),
) as { $schema: string };
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-07.json'), composeSchema.$schema);
const validateCompose = ajv.compile(composeSchema);

/** Compose's interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`) over a sample `.env`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(
    /\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (_, name: string, op?: string, arg?: string) => {
      const set = env[name];
      if (set !== undefined && set !== '') return set;
      if (op === '?') throw new Error(`${name} is required: ${arg}`);
      return op === '-' ? (arg ?? '') : '';
    },
  );
}

/** Every string of `value` interpolated, as compose does before it validates the file. */
function interpolateAll(value: unknown, env: Record<string, string>): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, env)]));
  }
  return value;
}

/** What the compose-spec schema says is wrong with `document`: one line per problem, none when valid. */
function composeProblems(document: unknown): string[] {
  if (validateCompose(document)) return [];
  return (validateCompose.errors ?? []).map(
    (error: ErrorObject) => `${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`,
  );
}

const SAMPLE_ENV = {
  RPC_URL: 'https://mainnet.base.org',
  TREASURY_ADDRESS: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
  METRICS_TOKEN: 'a-metrics-token-of-some-length',
};

/** Names of the series the API exports (histograms also as _bucket/_sum/_count). */
function exportedSeries(): Set<string> {
  const metrics = createAppMetrics();
  registerPlatformGauges(metrics, {} as PlatformProbe);
  const names = new Set<string>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const name = (metric as unknown as { name: string }).name;
    for (const suffix of ['', '_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

function seriesIn(expr: string): string[] {
  return [...expr.matchAll(/\bchainmeter_[a-z0-9_]+/g)].map((match) => match[0]);
}

describe('docker-compose.yml', () => {
  const services = compose.services;

  it('has the production shape', () => {
    for (const name of ['postgres', 'redis', 'indexer', 'api-1', 'api-2', 'litellm', 'lb', 'setup']) {
      expect(services[name], name).toBeDefined();
    }
    expect(services.prometheus?.profiles).toEqual(['monitoring']);
    expect(services.grafana?.profiles).toEqual(['monitoring']);
    // Two identical API replicas (merge key), behind the load balancer only.
    expect(services['api-2']?.command).toEqual(services['api-1']?.command);
    expect(services['api-2']?.environment).toEqual(services['api-1']?.environment);
    expect(services['api-1']?.ports).toBeUndefined();
    expect(services.lb?.ports).toEqual([`\${PORT:-4000}:4000`]);
    expect(read('deploy/nginx.conf')).toMatch(/server api-1:4000[\s\S]*server api-2:4000/);
    // Ponder must be stopped with SIGINT (SIGTERM leaves its schema locked).
    expect(services.indexer?.stop_signal).toBe('SIGINT');
  });

  it('gives every long-running service a healthcheck, the API one on /readyz', () => {
    for (const name of ['postgres', 'redis', 'indexer', 'api-1', 'api-2', 'litellm', 'lb']) {
      expect(services[name]?.healthcheck?.test, name).toBeInstanceOf(Array);
    }
    expect(services['api-1']?.healthcheck?.test.join(' ')).toContain('/readyz');
  });

  it('has dependencies that exist, with conditions the dependency can meet', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = services[dependency];
        expect(target, `${name} depends on ${dependency}`).toBeDefined();
        if (condition === 'service_healthy')
          expect(target?.healthcheck, `${dependency} healthcheck`).toBeDefined();
        if (condition === 'service_completed_successfully') expect(dependency).toBe('setup');
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
      }
    }
    expect(Object.keys(services['api-1']?.depends_on ?? {}).sort()).toEqual(
      ['indexer', 'litellm', 'postgres', 'redis', 'setup'].sort(),
    );
  });

  it('configures the API with an environment loadConfig accepts, pointing at the compose services', () => {
    const raw = services['api-1']?.environment ?? {};
    const envSource = read('api/src/env.ts');
    for (const key of Object.keys(raw)) expect(envSource, `${key} is read by env.ts`).toContain(`${key}:`);
    const env = Object.fromEntries(
      Object.entries(raw).map(([key, value]) => [key, interpolate(String(value), SAMPLE_ENV)]),
    );
    const config = loadConfig(env);
    expect(config.env).toBe('production');
    expect(config.databaseUrl).toMatch(/@postgres:5432\//);
    expect(config.redisUrl).toBe('redis://redis:6379');
    expect(config.indexerUrl).toBe('http://indexer:42069');
    expect(config.llm.baseUrl).toBe('http://litellm:4000/v1');
    expect(config.chainId).toBe(8453);
    expect(config.trustedProxies.length).toBeGreaterThan(0);
    expect(config.observability.metricsToken).toBe(SAMPLE_ENV.METRICS_TOKEN);
    // Required settings fail loudly rather than defaulting.
    expect(() => interpolate(String(raw.TREASURY_ADDRESS), {})).toThrow(/TREASURY_ADDRESS is required/);
    expect(() => interpolate(String(raw.METRICS_TOKEN), {})).toThrow(/METRICS_TOKEN is required/);
  });

  it('mounts files that exist and declares its named volumes and configs', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        if (source.startsWith('./'))
          expect(existsSync(path.join(ROOT, source)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${source}`).toHaveProperty(source);
      }
      for (const config of service.configs ?? []) expect(compose.configs).toHaveProperty(config.source);
    }
    const prometheus = parse(read('deploy/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: {
        static_configs: { targets: string[] }[];
        authorization: { credentials_file: string };
      }[];
    };
    expect(prometheus.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    expect(prometheus.scrape_configs[0]?.static_configs[0]?.targets).toEqual(['api-1:4000', 'api-2:4000']);
    // Prometheus's entrypoint writes the token where its scrape config reads it.
    const tokenFile = prometheus.scrape_configs[0]?.authorization.credentials_file ?? '';
    expect(String(services.prometheus?.command)).toContain(`> ${tokenFile}`);
    expect(services.prometheus?.environment?.METRICS_TOKEN).toBeDefined();
  });

  it('is a well-formed YAML file valid against the compose-spec schema, once interpolated', () => {
    const document = parseDocument(read('docker-compose.yml'), { merge: true });
    expect(document.errors.map(String)).toEqual([]);
    expect(document.warnings.map(String)).toEqual([]);
    expect(composeProblems(interpolateAll(document.toJS(), SAMPLE_ENV))).toEqual([]);
  });

  it('the schema check catches a broken compose file', () => {
    const valid = interpolateAll(parse(read('docker-compose.yml'), { merge: true }), SAMPLE_ENV) as Compose;
    const broken = (change: (copy: Compose & Record<string, unknown>) => void) => {
      const copy = structuredClone(valid) as Compose & Record<string, unknown>;
      change(copy);
      return composeProblems(copy);
    };
    // A misspelt key, a list written as a scalar, a condition compose does not know, a top-level typo.
    expect(
      broken((copy) => {
        (copy.services['api-1'] as Record<string, unknown>).helthcheck = copy.services['api-1']?.healthcheck;
      }),
    ).toEqual([expect.stringMatching(/^\/services\/api-1 must NOT have additional properties.*helthcheck/)]);
    expect(
      broken((copy) => {
        (copy.services.lb as Record<string, unknown>).ports = 4000;
      }),
    ).toEqual([expect.stringMatching(/^\/services\/lb\/ports must be array/)]);
    expect(
      broken((copy) => {
        copy.services.indexer!.depends_on = { postgres: { condition: 'healthy' } };
      }),
    ).toContainEqual(
      expect.stringMatching(/^\/services\/indexer\/depends_on\/postgres\/condition must be equal to one of/),
    );
    expect(
      broken((copy) => {
        copy.service = copy.services;
      }),
    ).toEqual([expect.stringMatching(/^\/ must NOT have additional properties.*"service"/)]);
  });
});

describe('alerts, runbooks and dashboard', () => {
  const exported = exportedSeries();
  const rules = (
    parse(read('docs/prometheus/alerts.yml')) as {
      groups: {
        rules: {
          alert: string;
          expr: string;
          labels: { severity: string };
          annotations: Record<string, string>;
        }[];
      }[];
    }
  ).groups.flatMap((group) => group.rules);

  it('covers API down, the indexer, crediting lag, reorgs, audit discrepancies and billing failures', () => {
    const alerts = rules.map((rule) => rule.alert);
    for (const alert of [
      'ChainMeterApiDown',
      'ChainMeterIndexerDown',
      'ChainMeterIndexerBehindChain',
      'ChainMeterCreditingLag',
      'ChainMeterDepositReorged',
      'ChainMeterCreditedDepositReorged',
      'ChainMeterAuditDiscrepancy',
      'ChainMeterBillingFailures',
      'ChainMeterRelayerGasLow',
    ]) {
      expect(alerts).toContain(alert);
    }
    expect(new Set(alerts).size).toBe(alerts.length);
  });

  it('gives each alert a severity, a summary and a runbook that exists and is indexed', () => {
    const index = read('docs/runbooks/README.md');
    for (const rule of rules) {
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
      expect(rule.annotations.runbook).toBe(`docs/runbooks/${rule.alert}.md`);
      const runbook = read(rule.annotations.runbook as string);
      for (const section of ['## What it means', '## How to check', '## How to fix']) {
        expect(runbook, `${rule.alert}: ${section}`).toContain(section);
      }
      expect(index).toContain(`(${rule.alert}.md)`);
    }
    const pages = readdirSync(path.join(ROOT, 'docs/runbooks')).filter((file) => file !== 'README.md');
    expect(pages.sort()).toEqual(rules.map((rule) => `${rule.alert}.md`).sort());
  });

  it('only uses series the API exports', () => {
    for (const rule of rules) {
      for (const series of seriesIn(rule.expr))
        expect(exported, `${rule.alert}: ${series}`).toContain(series);
    }
    const dashboard = JSON.parse(read('docs/grafana/chainmeter.json')) as {
      uid: string;
      panels: { id: number; targets?: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe('chainmeter');
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((target) => target.expr);
    expect(exprs.length).toBeGreaterThan(20);
    for (const expr of exprs) {
      for (const series of seriesIn(expr)) expect(exported, `dashboard: ${series}`).toContain(series);
    }
  });
});
