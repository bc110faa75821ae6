import { useEffect, useState } from 'preact/hooks';
import { api, type ServiceStatus } from '../api';
import { ErrorBox, Loading, StatusBadge } from '../components/common';
import { fmtDate, fmtDuration } from '../format';

const COMPONENTS: [keyof ServiceStatus, string][] = [
  ['api', 'API'], ['deployments', 'Deployments'], ['predictions', 'Predictions'], ['database', 'Database'], ['storage', 'Storage'],
];

// Public: no sign-in needed.
export function StatusPage() {
  const [s, setS] = useState<ServiceStatus | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    api<ServiceStatus>('GET', '/api/v1/status', { auth: false })
      .then((r) => { if (live) { setS(r); setError(null); } })
      .catch((e) => live && setError(e));
    const t = setTimeout(() => setTick((n) => n + 1), 30_000);
    return () => { live = false; clearTimeout(t); };
  }, [tick]);

  return (
    <section>
      <div class="page-head"><h1>Service status</h1></div>
      <ErrorBox error={error} title="The status could not be fetched; the server may be down." />
      {!s && !error && <Loading />}
      {s && (
        <>
          <div class={`status-banner status-${s.status === 'operational' ? 'ok' : 'warn'}`} data-testid="status-banner">
            {s.status === 'operational' ? 'All systems operational' : `Service ${s.status}`}
          </div>
          <ul class="components card" aria-label="Components">
            {COMPONENTS.map(([k, label]) => (
              <li key={k}><span>{label}</span><StatusBadge status={String(s[k])} /></li>
            ))}
          </ul>
          {s.issues.length > 0 && (
            <section class="card" aria-labelledby="issues-title">
              <h2 id="issues-title">Current issues</h2>
              <ul>{s.issues.map((i) => <li><strong>{i.component}:</strong> {i.message}</li>)}</ul>
            </section>
          )}
          <p class="muted small">Version {s.version} · up {fmtDuration(s.uptime_seconds)} · checked {fmtDate(s.timestamp)} · refreshes every 30 s</p>
        </>
      )}
    </section>
  );
}
