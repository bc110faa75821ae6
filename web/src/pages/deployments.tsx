import { useEffect, useState } from 'preact/hooks';
import { api, type Deployment, type Page } from '../api';
import { BASE, linkClick, setQuery, useLocation } from '../router';
import { Empty, ErrorBox, Loading, StatusBadge } from '../components/common';
import { fmtDate } from '../format';

const PAGE_SIZE = 10;
const STATUSES = ['validating', 'active', 'failed'];
const FRAMEWORKS: [string, string][] = [['onnx', 'ONNX'], ['sklearn', 'scikit-learn'], ['xgboost', 'XGBoost'], ['lightgbm', 'LightGBM']];

export function DeploymentsPage() {
  const { query } = useLocation();
  const search = query.get('search') || '';
  const status = query.get('status') || '';
  const framework = query.get('framework') || '';
  const page = Math.max(1, Number(query.get('page') || '1') || 1);

  const [searchInput, setSearchInput] = useState(search);
  const [data, setData] = useState<Page<Deployment> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);

  // Debounced search box -> ?search=
  useEffect(() => {
    if (searchInput === search) return;
    const t = setTimeout(() => setQuery({ search: searchInput.trim() || null, page: null }), 300);
    return () => clearTimeout(t);
  }, [searchInput]);

  useEffect(() => {
    const ctl = new AbortController();
    const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String((page - 1) * PAGE_SIZE) });
    if (search) q.set('search', search);
    if (status) q.set('status', status);
    if (framework) q.set('framework', framework);
    setLoading(true);
    api<Page<Deployment>>('GET', `/api/v1/deployments?${q}`, { signal: ctl.signal })
      .then((d) => { setData(d); setError(null); setLoading(false); })
      .catch((e) => { if (e.name !== 'AbortError') { setError(e); setLoading(false); } });
    return () => ctl.abort();
  }, [search, status, framework, page, tick]);

  // Keep polling while something is still validating.
  useEffect(() => {
    if (!data || !data.items.some((d) => d.status === 'validating')) return;
    const t = setTimeout(() => setTick((n) => n + 1), 1500);
    return () => clearTimeout(t);
  }, [data]);

  const filtered = !!(search || status || framework);
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE_SIZE)) : 1;
  const first = data && data.total ? data.offset + 1 : 0;
  const last = data ? data.offset + data.items.length : 0;

  return (
    <section>
      <div class="page-head">
        <h1>Deployments</h1>
        <a class="btn btn-primary" href={`${BASE}/deployments/new`} onClick={linkClick}>New deployment</a>
      </div>

      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setQuery({ search: searchInput.trim() || null, page: null }); }}>
        <div class="field field-grow">
          <label for="dep-search">Search</label>
          <input id="dep-search" type="search" placeholder="Name or id" value={searchInput}
                 onInput={(e) => setSearchInput((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="dep-status">Status</label>
          <select id="dep-status" value={status} onChange={(e) => setQuery({ status: (e.target as HTMLSelectElement).value, page: null })}>
            <option value="">All statuses</option>
            {STATUSES.map((s) => <option value={s}>{s}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="dep-framework">Framework</label>
          <select id="dep-framework" value={framework} onChange={(e) => setQuery({ framework: (e.target as HTMLSelectElement).value, page: null })}>
            <option value="">All frameworks</option>
            {FRAMEWORKS.map(([v, l]) => <option value={v}>{l}</option>)}
          </select>
        </div>
      </form>

      <ErrorBox error={error} title="Could not load deployments." />
      {loading && !data && <Loading />}
      {data && data.items.length === 0 && !filtered && (
        <Empty title="No deployments yet">
          <p>Upload a model file (ONNX today) and get a prediction API in seconds.</p>
          <a class="btn btn-primary" href={`${BASE}/deployments/new`} onClick={linkClick}>Deploy your first model</a>
        </Empty>
      )}
      {data && data.items.length === 0 && filtered && (
        <Empty title="No deployments match these filters">
          <button type="button" class="btn" onClick={() => { setSearchInput(''); setQuery({ search: null, status: null, framework: null, page: null }); }}>
            Clear filters
          </button>
        </Empty>
      )}
      {data && data.items.length > 0 && (
        <>
          <div class="table-wrap">
            <table class="table table-cards" aria-busy={loading}>
              <caption class="sr-only">Your deployments</caption>
              <thead>
                <tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Framework</th><th scope="col">Version</th><th scope="col">Created</th></tr>
              </thead>
              <tbody>
                {data.items.map((d) => (
                  <tr key={d.id} data-deployment-id={d.id}>
                    <td data-label="Name">
                      <a href={`${BASE}/deployments/${encodeURIComponent(d.id)}`} onClick={linkClick}>{d.name}</a>
                      <div class="muted mono small">{d.id}</div>
                    </td>
                    <td data-label="Status"><StatusBadge status={d.status} /></td>
                    <td data-label="Framework">{d.model_metadata?.framework || '—'}</td>
                    <td data-label="Version">{d.current_version || '—'}</td>
                    <td data-label="Created">{fmtDate(d.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pagination">
            <button type="button" class="btn btn-small" disabled={page <= 1} onClick={() => setQuery({ page: page - 1 })}>Previous</button>
            <span aria-live="polite">{first}–{last} of {data.total} · page {page} of {pages}</span>
            <button type="button" class="btn btn-small" disabled={page >= pages} onClick={() => setQuery({ page: page + 1 })}>Next</button>
          </nav>
        </>
      )}
    </section>
  );
}
