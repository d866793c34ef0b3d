/**
 * The soak's pure parts: the nginx configuration derived from deploy/nginx.conf, the options, the fault
 * schedule and the per-phase figures. (The soak itself runs in `.ci/run`, not here: it takes minutes.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, faultSchedule } from './faults.ts';
import type { CallRecord, SubscriptionRecord } from './load.ts';
import { DEPLOY_NGINX_CONF, deriveNginxConf } from './nginx.ts';
import { parseDuration, parseSoakOptions } from './options.ts';
import { phaseRows } from './report.ts';

describe('the soak nginx.conf', () => {
  const deploy = readFileSync(DEPLOY_NGINX_CONF, 'utf8');
  const addresses = { listenPort: 18080, upstreamPorts: [18081, 18082] as const, prefix: '/tmp/soak-nginx' };

  it('is deploy/nginx.conf with only the addresses and paths changed', () => {
    const conf = deriveNginxConf(deploy, addresses);
    expect(conf).toContain('server 127.0.0.1:18081 max_fails=3 fail_timeout=10s;');
    expect(conf).toContain('server 127.0.0.1:18082 max_fails=3 fail_timeout=10s;');
    expect(conf).toContain('listen 127.0.0.1:18080;');
    expect(conf).not.toMatch(/api-[12]:4000|listen 4000/);
    expect(conf).toMatch(/^daemon off;$/m);
    expect(conf).toContain('pid /tmp/soak-nginx/nginx.pid;');
    expect(conf).toContain('proxy_temp_path /tmp/soak-nginx/proxy;');
    // Every line of the deploy file but the three addresses is kept as it is.
    const kept = new Set(conf.split('\n'));
    const changed = deploy.split('\n').filter((line) => !kept.has(line));
    expect(changed.map((line) => line.trim())).toEqual([
      'server api-1:4000 max_fails=3 fail_timeout=10s;',
      'server api-2:4000 max_fails=3 fail_timeout=10s;',
      'listen 4000;',
    ]);
  });

  it('refuses a deploy file whose upstreams it cannot find', () => {
    expect(() => deriveNginxConf(deploy.replace('api-2:4000', 'api-b:4000'), addresses)).toThrow(/api-2/);
  });
});

describe('soak options', () => {
  it('reads durations with units, seconds by default', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(() => parseDuration('10 minutes')).toThrow(/duration/);
    expect(() => parseDuration('5s')).toThrow(/at least 20 s/);
  });

  it('takes --duration over SOAK_DURATION, and 10 minutes without either', () => {
    expect(parseSoakOptions(['--duration', '2m'], { SOAK_DURATION: '5m' }).durationMs).toBe(120_000);
    expect(parseSoakOptions([], { SOAK_DURATION: '5m' }).durationMs).toBe(300_000);
    expect(parseSoakOptions([], {}).durationMs).toBe(600_000);
    expect(() => parseSoakOptions(['--calls-per-second', '0'], {})).toThrow(/calls-per-second/);
    // Paid calls may be left out.
    expect(parseSoakOptions(['--paid-calls-per-second', '0'], {}).paidCallsPerSecond).toBe(0);
    expect(parseSoakOptions([], {}).paidCallsPerSecond).toBe(1);
  });
});

describe('the fault schedule', () => {
  it('runs every fault once in a minute, after a quiet baseline', () => {
    const schedule = faultSchedule(60_000);
    expect(schedule.map((fault) => fault.kind)).toEqual([...FAULT_KINDS]);
    expect(schedule[0]?.offsetMs).toBe(9_000);
    expect(schedule.map((fault) => fault.offsetMs)).toEqual([9_000, 19_200, 29_400, 39_600, 49_800]);
  });

  it('runs every fault twice in ten minutes', () => {
    const schedule = faultSchedule(600_000);
    expect(schedule).toHaveLength(10);
    expect(schedule[0]?.offsetMs).toBe(60_000);
    expect(schedule.at(-1)?.offsetMs).toBeLessThan(600_000);
  });
});

describe('phase figures', () => {
  const call = (start: number, end: number, served: boolean, failure?: string): CallRecord => ({
    start,
    end,
    stream: false,
    status: served ? 200 : 502,
    served,
    failure,
  });

  it('counts calls by when they ended, and times the recovery from the fault', () => {
    const loadStart = 0;
    const calls = [
      call(100, 200, true),
      call(1_100, 1_200, true),
      // In flight when the fault hit at 2,000: it belongs to the fault.
      call(1_900, 2_100, false, 'http_502'),
      call(2_500, 3_400, false, 'network'),
      call(3_500, 3_600, true),
    ];
    const subscriptions: SubscriptionRecord[] = [
      { transport: 'sse', wallet: '0x0', connects: [0, 2_700], drops: [2_050], events: [], errors: [] },
    ];
    const rows = phaseRows(
      [
        { name: 'baseline', detail: '', from: 0, to: 2_000 },
        { name: 'replica-kill', detail: '', from: 2_000, to: 8_000, backAt: 3_000 },
      ],
      calls,
      [
        { confirmedAt: 500, creditedAt: 700 },
        { confirmedAt: 2_200, creditedAt: 6_000 },
        // Confirmed 1 s before the next phase and credited after it began: not counted as this one's.
        { confirmedAt: 7_000, creditedAt: 11_000 },
      ],
      subscriptions,
      loadStart,
    );
    expect(rows[0]).toMatchObject({
      calls: '2',
      failed: '0',
      'served/s mean (min 1 s)': '1.0 (1)',
      'credit delay max': '0.2 s',
    });
    expect(rows[1]).toMatchObject({
      'back after': '1.0 s',
      calls: '3',
      failed: '2',
      'error rate': '66.7 %',
      failures: 'http_502 1, network 1',
      'calls ok again after': '1.4 s',
      'served/s mean (min 1 s)': '0.2 (0)',
      'credit delay max': '3.8 s',
      'crediting ok again after': '4.0 s',
      'subscription drops': '1',
      'subscriptions back after': '0.7 s',
    });
  });
});
