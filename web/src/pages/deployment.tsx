import { useEffect, useRef, useState } from 'preact/hooks';
import { api, upload, type Deployment, type Version } from '../api';
import { BASE, linkClick, navigate } from '../router';
import { ConfirmDialog, CopyButton, Empty, ErrorBox, Field, Loading, Notice, StatusBadge } from '../components/common';
import { fmtBytes, fmtDate, fmtMs } from '../format';
import { MetricsPanel } from './metrics-panel';
import { DropZone, UploadProgress } from './new-deployment';

// An example `data` value for the model's input signature.
export function exampleData(dep: Deployment): unknown {
  const meta = dep.model_metadata || ({} as Deployment['model_metadata']);
  if (meta.feature_names && meta.feature_names.length) {
    return Object.fromEntries(meta.feature_names.map((f) => [f, 0]));
  }
  const shape = meta.input_shape;
  if (Array.isArray(shape) && shape.length >= 2) {
    const dims = shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
    const count = dims.reduce((a, b) => a * b, 1);
    if (count <= 64) {
      const build = (i: number): unknown => (i === dims.length - 1 ? Array(dims[i]).fill(0) : Array.from({ length: dims[i] }, () => build(i + 1)));
      return build(0);
    }
  }
  return [0, 0, 0, 0];
}

function Snippets({ dep }: { dep: Deployment }) {
  const [tab, setTab] = useState<'curl' | 'python'>('curl');
  const body = JSON.stringify({ data: exampleData(dep) });
  const auth = !dep.configuration.is_public;
  const curl = [
    `curl -X POST '${dep.endpoint_url}' \\`,
    ...(auth ? [`  -H 'Authorization: Bearer YOUR_API_KEY' \\`] : []),
    `  -H 'Content-Type: application/json' \\`,
    `  -d '${body}'`,
  ].join('\n');
  const python = [
    'import requests',
    '',
    'resp = requests.post(',
    `    "${dep.endpoint_url}",`,
    ...(auth ? ['    headers={"Authorization": "Bearer YOUR_API_KEY"},'] : []),
    `    json=${body.replace(/:/g, ': ').replace(/,(?=\S)/g, ', ')},`,
    '    timeout=30,',
    ')',
    'resp.raise_for_status()',
    'print(resp.json())',
  ].join('\n');
  const text = tab === 'curl' ? curl : python;
  return (
    <div class="snippets">
      <div class="tabs" role="tablist" aria-label="Code snippet language">
        {(['curl', 'python'] as const).map((t) => (
          <button type="button" role="tab" id={`tab-${t}`} aria-selected={tab === t} aria-controls="snippet-panel"
                  class={`tab${tab === t ? ' active' : ''}`} onClick={() => setTab(t)}>
            {t === 'curl' ? 'curl' : 'Python'}
          </button>
        ))}
        <span class="spacer" />
        <CopyButton text={text} what={`${tab} snippet`} />
      </div>
      <pre id="snippet-panel" role="tabpanel" aria-labelledby={`tab-${tab}`} class="code" data-testid={`snippet-${tab}`}>{text}</pre>
      {auth && (
        <p class="hint">Replace <code>YOUR_API_KEY</code> with a key from <a href={`${BASE}/keys`} onClick={linkClick}>API keys</a> (the <code>predict</code> scope is enough).</p>
      )}
    </div>
  );
}

function TryIt({ dep, onSent }: { dep: Deployment; onSent: () => void }) {
  const [input, setInput] = useState(() => JSON.stringify({ data: exampleData(dep) }, null, 2));
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<any>(null);
  const [error, setError] = useState<unknown>(null);

  async function send(ev: Event) {
    ev.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(input);
    } catch (e) {
      setError(new Error(`The request is not valid JSON: ${(e as Error).message}`));
      setResult(null);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const r = await api('POST', `/api/v1/predict/${encodeURIComponent(dep.id)}`, { body });
      setResult(r);
    } catch (e) {
      setResult(null);
      setError(e);
    } finally {
      setBusy(false);
      onSent();
    }
  }

  const answer = result && ('prediction' in result ? result.prediction : 'predictions' in result ? result.predictions : result.outputs);
  return (
    <section class="card" aria-labelledby="tryit-title">
      <h2 id="tryit-title">Try it</h2>
      <form onSubmit={send}>
        <Field id="tryit-input" label="Request body (JSON)" hint='One row: {"data": [...]}; several rows: {"data": [[...], [...]]}; or named features as an object.'>
          <textarea id="tryit-input" class="mono" rows={5} spellcheck={false} aria-describedby="tryit-input-hint" value={input}
                    onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <button type="submit" class="btn btn-primary" disabled={busy || dep.status !== 'active'}>{busy ? 'Sending…' : 'Send prediction'}</button>
        {dep.status !== 'active' && <span class="muted"> The deployment must be active.</span>}
      </form>
      <ErrorBox error={error} title="The prediction failed." />
      {result && (
        <div class="result" aria-live="polite">
          <p>
            <strong>Answer:</strong> <code data-testid="prediction-answer">{JSON.stringify(answer)}</code>
            {typeof result.response_time_ms === 'number' && <span class="muted"> · {fmtMs(result.response_time_ms)} · model {result.model_version}</span>}
          </p>
          <pre class="code" data-testid="prediction-output">{JSON.stringify(result, null, 2)}</pre>
        </div>
      )}
    </section>
  );
}

function ConfigForm({ dep, onSaved }: { dep: Deployment; onSaved: (d: Deployment) => void }) {
  const c = dep.configuration;
  const [form, setForm] = useState({ memory_mb: String(c.memory_mb), timeout_seconds: String(c.timeout_seconds), min_instances: String(c.min_instances), max_instances: String(c.max_instances), is_public: c.is_public });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const num = (k: 'memory_mb' | 'timeout_seconds' | 'min_instances' | 'max_instances') => (e: Event) => { setSaved(false); setForm({ ...form, [k]: (e.target as HTMLInputElement).value }); };

  async function save(ev: Event) {
    ev.preventDefault();
    const configuration: Record<string, number | boolean> = { is_public: form.is_public };
    for (const k of ['memory_mb', 'timeout_seconds', 'min_instances', 'max_instances'] as const) {
      const v = Number(form[k]);
      if (form[k] === '' || !Number.isInteger(v)) {
        setError(new Error(`${k.replace('_', ' ')} must be a whole number.`));
        return;
      }
      configuration[k] = v;
    }
    setBusy(true);
    setError(null);
    try {
      const d = await api<Deployment>('PATCH', `/api/v1/deployments/${encodeURIComponent(dep.id)}`, { body: { configuration } });
      onSaved(d);
      setSaved(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card" aria-labelledby="config-title">
      <h2 id="config-title">Configuration</h2>
      <form onSubmit={save}>
        <div class="grid-2">
          <Field id="cfg-memory" label="Memory (MB)"><input id="cfg-memory" type="number" min={1} step={1} value={form.memory_mb} onInput={num('memory_mb')} /></Field>
          <Field id="cfg-timeout" label="Timeout (seconds)"><input id="cfg-timeout" type="number" min={1} step={1} value={form.timeout_seconds} onInput={num('timeout_seconds')} /></Field>
          <Field id="cfg-min" label="Min instances" hint="Instances kept warm (0 = load on demand)."><input id="cfg-min" type="number" min={0} step={1} aria-describedby="cfg-min-hint" value={form.min_instances} onInput={num('min_instances')} /></Field>
          <Field id="cfg-max" label="Max instances"><input id="cfg-max" type="number" min={1} step={1} value={form.max_instances} onInput={num('max_instances')} /></Field>
        </div>
        <label class="checkbox">
          <input type="checkbox" checked={form.is_public} onChange={(e) => { setSaved(false); setForm({ ...form, is_public: (e.target as HTMLInputElement).checked }); }} />
          Public: predictions need no token or API key
        </label>
        <ErrorBox error={error} title="Could not save." />
        {saved && <Notice kind="success">Configuration saved.</Notice>}
        <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? 'Saving…' : 'Save configuration'}</button>
      </form>
    </section>
  );
}

function Versions({ dep, onChanged }: { dep: Deployment; onChanged: (d?: Deployment) => void }) {
  const [items, setItems] = useState<Version[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<{ loaded: number; total: number } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api<{ items: Version[] }>('GET', `/api/v1/deployments/${encodeURIComponent(dep.id)}/versions`)
      .then((r) => { if (live) { setItems(r.items); setError(null); } })
      .catch((e) => live && setError(e));
    return () => { live = false; };
  }, [dep.id, dep.current_version, tick]);

  // After an upload, poll the versions and the deployment until the new version failed or
  // has become current (the server records the version, then the deployment).
  const [pending, setPending] = useState<string | null>(null);
  const pendingVersion = pending ? items?.find((v) => v.version === pending) : undefined;
  const settled = !!pendingVersion && (pendingVersion.status === 'failed' ||
                                       (pendingVersion.status === 'active' && dep.current_version === pending));
  const validating = items?.some((v) => v.status === 'validating');
  useEffect(() => {
    if (settled) {
      setNotice(pendingVersion!.status === 'failed' ? null : `${pending} is now current.`);
      if (pendingVersion!.status === 'failed') setError(new Error(`${pending} failed validation: ${pendingVersion!.error_message || 'no reason given'}`));
      setPending(null);
      return;
    }
    if (!pending && !validating) return;
    const t = setTimeout(() => { setTick((n) => n + 1); onChanged(); }, 500);
    return () => clearTimeout(t);
  }, [pending, settled, validating, tick]);

  async function rollback(version: string) {
    setBusy(version);
    setError(null);
    setNotice(null);
    try {
      const d = await api<Deployment>('POST', `/api/v1/deployments/${encodeURIComponent(dep.id)}/rollback`, { body: { version } });
      setNotice(`Rolled back to ${version}.`);
      onChanged(d);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }

  async function uploadVersion() {
    if (!file) return;
    const form = new FormData();
    form.append('model_file', file, file.name);
    setError(null);
    setNotice(null);
    setProgress({ loaded: 0, total: file.size });
    try {
      const v = await upload<Version>(`/api/v1/deployments/${encodeURIComponent(dep.id)}/versions`, form,
                                      (loaded, total) => setProgress({ loaded, total })).promise;
      setNotice(`Uploaded ${v.version}; validating it…`);
      setPending(v.version);
      setFile(null);
      setTick((n) => n + 1);
    } catch (e) {
      setError(e);
    } finally {
      setProgress(null);
    }
  }

  return (
    <section class="card" aria-labelledby="versions-title">
      <h2 id="versions-title">Versions</h2>
      <ErrorBox error={error} />
      {notice && <Notice kind="success">{notice}</Notice>}
      {!items && !error && <Loading />}
      {items && items.length === 0 && <Empty title="No versions" />}
      {items && items.length > 0 && (
        <div class="table-wrap">
          <table class="table table-cards" data-testid="versions">
            <thead><tr><th scope="col">Version</th><th scope="col">Status</th><th scope="col">File</th><th scope="col">Uploaded</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {items.map((v) => (
                <tr key={v.version}>
                  <td data-label="Version"><strong>{v.version}</strong> {v.is_current && <span class="badge badge-ok">current</span>}</td>
                  <td data-label="Status"><StatusBadge status={v.status} />{v.error_message && <div class="small error-text">{v.error_message}</div>}</td>
                  <td data-label="File">{v.filename} <span class="muted small">{fmtBytes(v.size_bytes)}</span></td>
                  <td data-label="Uploaded">{fmtDate(v.created_at)}</td>
                  <td data-label="">
                    {!v.is_current && v.status === 'active' && (
                      <button type="button" class="btn btn-small" disabled={busy !== null} onClick={() => rollback(v.version)}>
                        {busy === v.version ? 'Rolling back…' : `Roll back to ${v.version}`}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <details class="advanced">
        <summary>Upload a new version</summary>
        <DropZone id="version-file" file={file} onFile={setFile} disabled={!!progress} />
        {progress && <UploadProgress loaded={progress.loaded} total={progress.total} />}
        <button type="button" class="btn btn-primary" disabled={!file || !!progress} onClick={uploadVersion}>Upload version</button>
      </details>
    </section>
  );
}

export function DeploymentPage({ id }: { id: string }) {
  const [dep, setDep] = useState<Deployment | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [refresh, setRefresh] = useState(0);
  const [confirm, setConfirm] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const reloadRef = useRef(0);

  const load = () => {
    const n = ++reloadRef.current;
    api<Deployment>('GET', `/api/v1/deployments/${encodeURIComponent(id)}`)
      .then((d) => { if (n === reloadRef.current) { setDep(d); setError(null); } })
      .catch((e) => { if (n === reloadRef.current) setError(e); });
  };
  useEffect(load, [id]);
  useEffect(() => {
    if (dep?.status !== 'validating') return;
    const t = setTimeout(load, 500);
    return () => clearTimeout(t);
  }, [dep]);

  async function doDelete() {
    setDeleting(true);
    setDeleteError(null);
    try {
      await api('DELETE', `/api/v1/deployments/${encodeURIComponent(id)}`);
      setConfirm(false);
      navigate(`${BASE}/deployments`);
    } catch (e) {
      setDeleteError(e);
      setDeleting(false);
    }
  }

  if (!dep) {
    return (
      <section>
        <h1>Deployment</h1>
        {error ? <ErrorBox error={error} title="Could not load this deployment." /> : <Loading />}
        <p><a href={`${BASE}/deployments`} onClick={linkClick}>Back to deployments</a></p>
      </section>
    );
  }

  const meta = dep.model_metadata;
  return (
    <section>
      <p class="crumbs"><a href={`${BASE}/deployments`} onClick={linkClick}>Deployments</a> / <span class="mono">{dep.id}</span></p>
      <div class="page-head">
        <h1>{dep.name} <StatusBadge status={dep.status} /></h1>
      </div>
      {dep.status === 'failed' && (
        <div class="alert alert-error" role="alert"><strong>Deployment failed.</strong> <span data-testid="failure-reason">{dep.error_message || 'No reason was given.'}</span></div>
      )}
      {dep.status === 'validating' && <Notice>Validating the model… this page updates by itself.</Notice>}

      <section class="card" aria-labelledby="endpoint-title">
        <h2 id="endpoint-title">Endpoint</h2>
        <div class="endpoint">
          <code data-testid="endpoint-url">POST {dep.endpoint_url}</code>
          <CopyButton text={dep.endpoint_url} what="endpoint URL" />
        </div>
        <dl class="facts">
          <div><dt>Framework</dt><dd>{meta.framework}{meta.model_type ? ` · ${meta.model_type}` : ''}</dd></div>
          <div><dt>Version</dt><dd>{dep.current_version || '—'}</dd></div>
          <div><dt>Size</dt><dd>{meta.size_mb} MB</dd></div>
          <div><dt>Input shape</dt><dd class="mono">{meta.input_shape ? JSON.stringify(meta.input_shape) : '—'}</dd></div>
          <div><dt>Output shape</dt><dd class="mono">{meta.output_shape ? JSON.stringify(meta.output_shape) : '—'}</dd></div>
          {meta.classes && <div><dt>Classes</dt><dd>{meta.classes.join(', ')}</dd></div>}
          <div><dt>Access</dt><dd>{dep.configuration.is_public ? 'public' : 'token or API key'}</dd></div>
          <div><dt>Created</dt><dd>{fmtDate(dep.created_at)}</dd></div>
        </dl>
        <Snippets dep={dep} />
      </section>

      <TryIt dep={dep} onSent={() => { setRefresh((n) => n + 1); load(); }} />
      <MetricsPanel dep={dep} refresh={refresh} />
      <ConfigForm key={dep.id} dep={dep} onSaved={setDep} />
      <Versions dep={dep} onChanged={(d) => (d ? setDep(d) : load())} />

      <section class="card card-danger" aria-labelledby="danger-title">
        <h2 id="danger-title">Delete deployment</h2>
        <p>Deleting removes the endpoint at once. Clients calling it will get 404.</p>
        <button type="button" class="btn btn-danger" onClick={() => setConfirm(true)}>Delete deployment…</button>
      </section>
      <ConfirmDialog open={confirm} title={`Delete “${dep.name}”?`} confirmLabel="Delete" danger busy={deleting}
                     onConfirm={doDelete} onCancel={() => { setConfirm(false); setDeleteError(null); }}>
        <p>This cannot be undone. The endpoint <code>{dep.endpoint_url}</code> stops answering.</p>
        <ErrorBox error={deleteError} />
      </ConfirmDialog>
    </section>
  );
}
