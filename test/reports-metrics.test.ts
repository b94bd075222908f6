import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Metrics } from '../src/http/metrics.js';
import { startAdminServer, type AdminServer } from '../src/http/server.js';
import { MemoryStore } from '../src/store/memory.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../src/domain/dialogue/steps.js';
import { silentLogger } from '../src/log.js';

/**
 * The Grafana dashboard and the Prometheus alert rules under docker/ only name metrics and labels
 * that pay-ivr's /metrics really exposes; the funnel labels carry step words and nothing else.
 */

const DOCKER = join(process.cwd(), 'docker');
let admin: AdminServer | undefined;
let exposition = '';
const metrics = new Metrics();

beforeAll(async () => {
  // One of every series, so that histogram and labelled samples show in the exposition.
  metrics.pspRequest('sandbox', 'unknown', 0.2);
  metrics.refer('failed');
  metrics.segmentEnded('approved', 42);
  metrics.stepReached('answer');
  metrics.watch({ backendReady: () => true, storeUp: async () => true, breakers: () => [{ profile: 'default', open: false }] });
  admin = await startAdminServer({ config: { admin: { enabled: true, host: '127.0.0.1', port: 0 } }, store: new MemoryStore(), metrics, backendStatus: () => ({ ready: true, activeCalls: 0 }), logger: silentLogger });
  exposition = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
});

afterAll(async () => {
  await admin?.close();
});

/** Every PromQL expression of the dashboard and the alert rules. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const dash = JSON.parse(readFileSync(join(DOCKER, 'grafana', 'dashboards', 'pay-ivr.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  for (const p of dash.panels) for (const t of p.targets) out.push({ where: `dashboard "${p.title}"`, expr: t.expr });
  const rules = parseYaml(readFileSync(join(DOCKER, 'prometheus', 'alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  for (const g of rules.groups) for (const r of g.rules) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  return out;
}

/** Metric names in an expression (pay-ivr's and the process metrics; `up` is Prometheus' own). */
function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b((?:pay_ivr|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1] as string))];
}

/** Samples of a metric in the exposition (histogram names keep their _bucket/_count/_sum). */
function samples(name: string): string[] {
  return exposition.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('dashboard and alert rules against /metrics', () => {
  it('reads the 19 queries of the 14 dashboard panels and the 6 alert rules, each with a pay-ivr metric or up{}', () => {
    const ex = expressions();
    expect(ex.filter((e) => e.where.startsWith('dashboard'))).toHaveLength(19);
    expect(ex.filter((e) => e.where.startsWith('alert')).map((e) => e.where)).toEqual([
      'alert PayIvrDown',
      'alert PayIvrPspErrorRate',
      'alert PayIvrPspBreakerOpen',
      'alert PayIvrReferFailures',
      'alert PayIvrNoCalls',
      'alert PayIvrStoreDegraded',
    ]);
    for (const e of ex) expect(metricNames(e.expr).length > 0 || /\bup\{/.test(e.expr), e.where).toBe(true);
  });

  it('every metric name they use exists in /metrics', () => {
    const missing: string[] = [];
    for (const e of expressions()) for (const n of metricNames(e.expr)) if (samples(n).length === 0) missing.push(`${e.where}: ${n}`);
    expect(missing).toEqual([]);
    // The check can fail: a made-up name has no sample.
    expect(samples('pay_ivr_no_such_metric_total')).toEqual([]);
  });

  it('every label they select or group by exists on that metric', () => {
    const problems: string[] = [];
    for (const e of expressions()) {
      for (const m of e.expr.matchAll(/\b((?:pay_ivr|process)_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const lines = samples(m[1] as string);
        for (const sel of (m[2] as string).matchAll(/([a-z_]+)\s*=~?\s*"([^"]*)"/g)) {
          if (!lines.some((l) => l.includes(`${sel[1]}="${sel[2]}"`))) problems.push(`${e.where}: ${m[1]}{${sel[1]}="${sel[2]}"}`);
        }
      }
      for (const by of e.expr.matchAll(/by \(([^)]*)\)\s*\((?:[a-z_]+\()*\s*((?:pay_ivr|process)_[a-z0-9_]+)/g)) {
        const lines = samples(by[2] as string);
        for (const label of (by[1] as string).split(',').map((x) => x.trim())) {
          if (label === 'instance') continue; // added by Prometheus at scrape time
          if (!lines.some((l) => l.includes(`${label}="`))) problems.push(`${e.where}: ${by[2]} by ${label}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('the funnel counters exist for every step from the start, and a label can only be a step word', () => {
    for (const step of DIALOGUE_STEPS) expect(samples('pay_ivr_step_reached_total').some((l) => l.includes(`step="${step}"`)), step).toBe(true);
    const m = new Metrics();
    m.stepReached('4242424242424242' as DialogueStep);
    m.stepAbandoned('INV-77' as DialogueStep);
    m.segmentEnded('4242424242424242', 10);
    return m.text().then((t) => {
      expect(t).not.toContain('4242424242424242');
      expect(t).not.toContain('INV-77');
      expect(t).toMatch(/pay_ivr_step_reached_total\{step="other"\} 1/);
      expect(t).toMatch(/pay_ivr_segment_duration_seconds_count\{outcome="other"\} 1/);
    });
  });

  it('compose runs Prometheus and Grafana from pinned image tags, on loopback, with the rules and the dashboard', () => {
    const compose = parseYaml(readFileSync(join(DOCKER, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image: string; command?: string[]; environment?: Record<string, string>; volumes?: string[] }> };
    const prom = compose.services.prometheus;
    const graf = compose.services.grafana;
    expect(prom?.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(graf?.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    expect(prom?.command).toContain('--web.listen-address=127.0.0.1:9090');
    expect(graf?.environment?.GF_SERVER_HTTP_ADDR).toBe('127.0.0.1');
    expect(prom?.volumes).toContain('./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro');
    expect(graf?.volumes).toContain('./grafana/dashboards:/var/lib/grafana/dashboards:ro');
    const scrape = parseYaml(readFileSync(join(DOCKER, 'prometheus', 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[] };
    expect(scrape.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    expect(scrape.scrape_configs[0]?.static_configs[0]?.targets).toEqual(['127.0.0.1:8080']);
  });
});
