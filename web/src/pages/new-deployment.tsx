import { useEffect, useRef, useState } from 'preact/hooks';
import { api, upload, type Deployment } from '../api';
import { BASE, linkClick, navigate } from '../router';
import { ErrorBox, Field, Notice, StatusBadge } from '../components/common';
import { fmtBytes } from '../format';

const ACCEPT = '.onnx,.pkl,.pickle,.joblib,.json,.ubj,.xgb,.txt,.lgb,.lgbm';

type Phase = 'idle' | 'uploading' | 'validating' | 'active' | 'failed';

// Drop zone + file picker. The <input type=file> stays focusable (visually hidden) so the
// picker is reachable from the keyboard; the whole zone is its label.
export function DropZone({ file, onFile, disabled, id = 'model-file' }: {
  file: File | null; onFile: (f: File) => void; disabled?: boolean; id?: string;
}) {
  const [over, setOver] = useState(false);
  return (
    <label for={id} class={`dropzone${over ? ' dropzone-over' : ''}${disabled ? ' dropzone-disabled' : ''}`}
           data-testid="dropzone"
           onDragEnter={(e) => { e.preventDefault(); if (!disabled) setOver(true); }}
           onDragOver={(e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = disabled ? 'none' : 'copy'; }}
           onDragLeave={() => setOver(false)}
           onDrop={(e) => {
             e.preventDefault();
             setOver(false);
             const f = e.dataTransfer?.files?.[0];
             if (f && !disabled) onFile(f);
           }}>
      <input id={id} type="file" class="visually-hidden" accept={ACCEPT} disabled={disabled}
             onChange={(e) => { const f = (e.target as HTMLInputElement).files?.[0]; if (f) onFile(f); }} />
      <span class="dropzone-icon" aria-hidden="true">⇪</span>
      {file ? (
        <span class="dropzone-file"><strong>{file.name}</strong> · {fmtBytes(file.size)}</span>
      ) : (
        <span>Drop a model file here, or <span class="linkish">choose a file</span></span>
      )}
      <span class="hint">ONNX (.onnx) today; scikit-learn, XGBoost and LightGBM files are recognised.</span>
    </label>
  );
}

export function UploadProgress({ loaded, total }: { loaded: number; total: number }) {
  const pct = total ? Math.round((loaded / total) * 100) : 0;
  return (
    <div class="progress-row">
      <progress id="upload-progress" max={100} value={pct} aria-label="Upload progress" />
      <span class="progress-text" aria-live="polite">{pct}% · {fmtBytes(loaded)} of {fmtBytes(total)}</span>
    </div>
  );
}

export function NewDeploymentPage() {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [memory, setMemory] = useState('');
  const [timeout, setTimeoutS] = useState('');
  const [isPublic, setPublic] = useState(false);
  const [phase, setPhase] = useState<Phase>('idle');
  const [progress, setProgress] = useState({ loaded: 0, total: 0 });
  const [dep, setDep] = useState<Deployment | null>(null);
  const [error, setError] = useState<unknown>(null);
  const abortRef = useRef<(() => void) | null>(null);

  useEffect(() => () => abortRef.current?.(), []);

  // Live status: poll the deployment until it leaves "validating".
  useEffect(() => {
    if (phase !== 'validating' || !dep) return;
    let live = true;
    let timer = 0;
    const started = Date.now();
    const poll = async () => {
      try {
        const d = await api<Deployment>('GET', `/api/v1/deployments/${encodeURIComponent(dep.id)}`);
        if (!live) return;
        setDep(d);
        if (d.status === 'active') return setPhase('active');
        if (d.status === 'failed') return setPhase('failed');
      } catch (e) {
        if (!live) return;
        setError(e);
      }
      if (Date.now() - started > 5 * 60_000) return;
      timer = window.setTimeout(poll, 400);
    };
    timer = window.setTimeout(poll, 150);
    return () => { live = false; clearTimeout(timer); };
  }, [phase, dep?.id]);

  function choose(f: File) {
    setFile(f);
    setError(null);
    if (!name) setName(f.name.replace(/\.[^.]+$/, ''));
  }

  async function submit(ev: Event) {
    ev.preventDefault();
    if (!file) {
      setError(new Error('Choose a model file first.'));
      return;
    }
    const form = new FormData();
    form.append('model_file', file, file.name);
    if (name.trim()) form.append('name', name.trim());
    if (memory) form.append('memory', memory);
    if (timeout) form.append('timeout', timeout);
    if (isPublic) form.append('is_public', 'true');
    setError(null);
    setDep(null);
    setProgress({ loaded: 0, total: file.size });
    setPhase('uploading');
    const up = upload<Deployment>('/api/v1/deploy', form, (loaded, total) => setProgress({ loaded, total }));
    abortRef.current = up.abort;
    try {
      const d = await up.promise;
      abortRef.current = null;
      setProgress((p) => ({ loaded: p.total, total: p.total }));
      setDep(d);
      setPhase(d.status === 'active' ? 'active' : d.status === 'failed' ? 'failed' : 'validating');
    } catch (e) {
      abortRef.current = null;
      setError(e);
      setPhase('idle');
    }
  }

  const busy = phase === 'uploading' || phase === 'validating';
  const done = phase === 'active' || phase === 'failed';

  return (
    <section>
      <div class="page-head">
        <h1>New deployment</h1>
        <a href={`${BASE}/deployments`} onClick={linkClick}>Back to deployments</a>
      </div>
      <form class="card" onSubmit={submit}>
        <DropZone file={file} onFile={choose} disabled={busy} />
        <Field id="dep-name" label="Name" hint="Defaults to the file name.">
          <input id="dep-name" value={name} maxLength={100} disabled={busy} aria-describedby="dep-name-hint"
                 onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <details class="advanced">
          <summary>Advanced options</summary>
          <div class="grid-2">
            <Field id="dep-memory" label="Memory (MB)">
              <input id="dep-memory" type="number" min={128} step={1} inputMode="numeric" placeholder="default" value={memory}
                     disabled={busy} onInput={(e) => setMemory((e.target as HTMLInputElement).value)} />
            </Field>
            <Field id="dep-timeout" label="Timeout (seconds)">
              <input id="dep-timeout" type="number" min={1} step={1} inputMode="numeric" placeholder="default" value={timeout}
                     disabled={busy} onInput={(e) => setTimeoutS((e.target as HTMLInputElement).value)} />
            </Field>
          </div>
          <label class="checkbox">
            <input type="checkbox" checked={isPublic} disabled={busy} onChange={(e) => setPublic((e.target as HTMLInputElement).checked)} />
            Public: anyone with the URL may call the prediction endpoint without a key
          </label>
        </details>
        <ErrorBox error={error} title={phase === 'idle' ? 'The upload failed.' : undefined} />
        {phase === 'idle' && <button type="submit" class="btn btn-primary">Deploy</button>}
        {phase === 'uploading' && (
          <>
            <UploadProgress loaded={progress.loaded} total={progress.total} />
            <button type="button" class="btn" onClick={() => abortRef.current?.()}>Cancel upload</button>
          </>
        )}
      </form>

      {(phase === 'validating' || done) && dep && (
        <div class="card deploy-status" aria-live="polite" data-testid="deploy-status">
          <UploadProgress loaded={progress.total} total={progress.total} />
          <p>
            <strong>{dep.name}</strong> <StatusBadge status={dep.status} />{' '}
            {phase === 'validating' && <span class="muted">Validating the model: loading it, inferring its signature and running a probe input…</span>}
          </p>
          {phase === 'active' && (
            <>
              <Notice kind="success">The deployment is active and ready for predictions.</Notice>
              <div class="actions">
                <a class="btn btn-primary" href={`${BASE}/deployments/${encodeURIComponent(dep.id)}`} onClick={linkClick}>Open deployment</a>
                <button type="button" class="btn" onClick={() => { setFile(null); setName(''); setDep(null); setPhase('idle'); }}>Deploy another</button>
              </div>
            </>
          )}
          {phase === 'failed' && (
            <>
              <div class="alert alert-error" role="alert">
                <strong>The deployment failed.</strong>{' '}
                <span data-testid="failure-reason">{dep.error_message || 'No reason was given.'}</span>
              </div>
              <div class="actions">
                <button type="button" class="btn btn-primary" onClick={() => { setFile(null); setDep(null); setPhase('idle'); }}>Try another file</button>
                <button type="button" class="btn" onClick={() => navigate(`${BASE}/deployments/${encodeURIComponent(dep.id)}`)}>View details</button>
              </div>
            </>
          )}
        </div>
      )}
    </section>
  );
}
