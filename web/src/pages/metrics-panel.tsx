import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiError, type Deployment, type Metrics } from '../api';
import { Empty, ErrorBox, Loading } from '../components/common';
import { TimeChart, type Series } from '../components/chart';
import { fmtMs } from '../format';

const RANGES: { label: string; hours: number; resolution: string }[] = [
  { label: '1h', hours: 1, resolution: '1m' },
  { label: '24h', hours: 24, resolution: '5m' },
  { label: '7d', hours: 168, resolution: '1h' },
];

function toSeconds(t: string | number): number {
  if (typeof t === 'number') return t > 1e11 ? t / 1000 : t;
  return Date.parse(t) / 1000;
}

export function MetricsPanel({ dep, refresh }: { dep: Deployment; refresh: number }) {
  const [range, setRange] = useState(RANGES[0]);
  const [data, setData] = useState<Metrics | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [unavailable, setUnavailable] = useState(false);
  const [loading, setLoading] = useState(true);
  // Auto-refresh every 30 s while the page is open.
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 30_000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    const q = new URLSearchParams({ hours: String(range.hours), resolution: range.resolution });
    api<Metrics>('GET', `/api/v1/metrics/${encodeURIComponent(dep.id)}?${q}`, { signal: ctl.signal })
      .then((m) => { setData(m); setError(null); setUnavailable(false); setLoading(false); })
      .catch((e) => {
        if (e.name === 'AbortError') return;
        // A server without the per-deployment metrics route answers 404 "no route for ...".
        if (e instanceof ApiError && e.status === 404 && /no route/i.test(e.message)) {
          setUnavailable(true);
          setError(null);
        } else {
          setError(e);
        }
        setData(null);
        setLoading(false);
      });
    return () => ctl.abort();
  }, [dep.id, range, refresh, tick]);


  const charts = useMemo(() => {
    if (!data || !data.time_series) return null;
    const ts = data.time_series;
    const times = (ts.timestamps || []).map(toSeconds);
    const traffic: Series[] = [
      { label: 'Requests', values: ts.request_counts || [], color: '#2563eb' },
      { label: 'Errors', values: ts.error_counts || [], color: '#dc2626' },
    ];
    // An interval without requests has no latency: a gap, not 0 ms.
    const counts = ts.request_counts || [];
    const lat = (v: (number | null)[] | undefined) => (v || []).map((x, i) => (counts[i] ? x : null));
    const latency: Series[] = [];
    if (ts.p50_latencies) latency.push({ label: 'p50', values: lat(ts.p50_latencies), color: '#16a34a', unit: ' ms' });
    latency.push({ label: 'avg', values: lat(ts.avg_latencies), color: '#64748b', unit: ' ms' });
    latency.push({ label: 'p95', values: lat(ts.p95_latencies), color: '#d97706', unit: ' ms' });
    if (ts.p99_latencies) latency.push({ label: 'p99', values: lat(ts.p99_latencies), color: '#9333ea', unit: ' ms' });
    return { times, traffic, latency };
  }, [data]);

  const m = data?.metrics;
  const summary = dep.metrics_summary;
  return (
    <section class="card" aria-labelledby="metrics-title" data-testid="metrics">
      <div class="card-head">
        <h2 id="metrics-title">Metrics</h2>
        <div class="segmented" role="group" aria-label="Time range">
          {RANGES.map((r) => (
            <button type="button" class={`btn btn-small${r.label === range.label ? ' active' : ''}`}
                    aria-pressed={r.label === range.label} onClick={() => setRange(r)}>
              {r.label}
            </button>
          ))}
        </div>
      </div>
      {m && (
        <dl class="tiles" data-testid="metric-tiles">
          <div><dt>Requests</dt><dd data-testid="metric-requests">{m.request_count}</dd></div>
          <div><dt>Errors</dt><dd data-testid="metric-errors">{m.error_count}</dd></div>
          <div><dt>p50</dt><dd>{fmtMs(m.p50_latency_ms)}</dd></div>
          <div><dt>p95</dt><dd>{fmtMs(m.p95_latency_ms)}</dd></div>
          <div><dt>p99</dt><dd>{fmtMs(m.p99_latency_ms)}</dd></div>
          <div><dt>Cold starts</dt><dd>{m.cold_starts}</dd></div>
          {data?.cost_estimate && <div><dt>Est. cost</dt><dd>${data.cost_estimate.total_usd.toFixed(4)}</dd></div>}
        </dl>
      )}
      <ErrorBox error={error} title="Could not load metrics." />
      {loading && !data && !unavailable && <Loading label="Loading metrics…" />}
      {unavailable && (
        <div data-testid="metrics-unavailable">
          {summary && (
            <dl class="tiles">
              <div><dt>Requests (since start)</dt><dd data-testid="summary-requests">{summary.request_count}</dd></div>
              <div><dt>Errors</dt><dd>{summary.error_count}</dd></div>
              <div><dt>Avg latency</dt><dd>{fmtMs(summary.avg_latency_ms)}</dd></div>
            </dl>
          )}
          <Empty title="Charts are not available on this server yet">
            <p>This server does not provide per-deployment time series (<code>GET /api/v1/metrics/{'{id}'}</code>).</p>
          </Empty>
        </div>
      )}
      {data && m && m.request_count === 0 && (
        <Empty title={`No requests in the last ${range.label}`}>
          <p>Send a prediction (for example with the “Try it” form) and it will show up here.</p>
        </Empty>
      )}
      {charts && m && m.request_count > 0 && (
        <div class="charts" data-testid="charts">
          <TimeChart title="Requests and errors" times={charts.times} series={charts.traffic} yLabel={`per ${range.resolution}`} integer />
          <TimeChart title="Latency" times={charts.times} series={charts.latency} yLabel="ms" />
        </div>
      )}
    </section>
  );
}
