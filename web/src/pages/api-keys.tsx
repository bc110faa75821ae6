import { useEffect, useState } from 'preact/hooks';
import { api, type ApiKey } from '../api';
import { ConfirmDialog, CopyButton, Empty, ErrorBox, Loading } from '../components/common';
import { fmtDate } from '../format';

export function ApiKeysPage() {
  const [items, setItems] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const [name, setName] = useState('');
  const [scope, setScope] = useState('predict');
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [revokeBusy, setRevokeBusy] = useState(false);
  const [revokeError, setRevokeError] = useState<unknown>(null);

  useEffect(() => {
    let live = true;
    api<{ items: ApiKey[] }>('GET', '/api/v1/api-keys')
      .then((r) => { if (live) { setItems(r.items); setError(null); } })
      .catch((e) => live && setError(e));
    return () => { live = false; };
  }, [tick]);

  async function create(ev: Event) {
    ev.preventDefault();
    setCreating(true);
    setCreateError(null);
    try {
      const k = await api<ApiKey>('POST', '/api/v1/api-keys', { body: { name: name.trim(), scopes: [scope] } });
      setCreated(k);
      setName('');
      setTick((n) => n + 1);
    } catch (e) {
      setCreateError(e);
    } finally {
      setCreating(false);
    }
  }

  async function revoke() {
    if (!revoking) return;
    setRevokeBusy(true);
    setRevokeError(null);
    try {
      await api('DELETE', `/api/v1/api-keys/${encodeURIComponent(revoking.id)}`);
      if (created?.id === revoking.id) setCreated(null);
      setRevoking(null);
      setTick((n) => n + 1);
    } catch (e) {
      setRevokeError(e);
    } finally {
      setRevokeBusy(false);
    }
  }

  const active = items?.filter((k) => !k.revoked) ?? [];
  const revoked = items?.filter((k) => k.revoked) ?? [];
  return (
    <section>
      <div class="page-head"><h1>API keys</h1></div>
      <p class="lead">Keys let scripts and services call ServeML without your password. A <strong>predict</strong> key can only make
        predictions; a <strong>manage</strong> key can do everything your account can.</p>

      <form class="card filters" onSubmit={create} aria-labelledby="newkey-title">
        <h2 id="newkey-title" class="full">Create a key</h2>
        <div class="field field-grow">
          <label for="key-name">Name</label>
          <input id="key-name" required maxLength={100} placeholder="e.g. notebook" value={name}
                 onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="key-scope">Scope</label>
          <select id="key-scope" value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value)}>
            <option value="predict">predict (predictions only)</option>
            <option value="manage">manage (full access)</option>
          </select>
        </div>
        <div class="field field-button">
          <button type="submit" class="btn btn-primary" disabled={creating}>{creating ? 'Creating…' : 'Create key'}</button>
        </div>
        <div class="full"><ErrorBox error={createError} title="Could not create the key." /></div>
      </form>

      {created?.key && (
        <div class="card card-highlight" role="status" data-testid="new-key">
          <h2>Your new key “{created.name}”</h2>
          <p><strong>Copy it now: it will not be shown again.</strong> Only a hash is stored.</p>
          <div class="endpoint">
            <code class="secret" data-testid="new-key-value">{created.key}</code>
            <CopyButton text={created.key} what="API key" />
          </div>
          <button type="button" class="btn btn-small" onClick={() => setCreated(null)}>I have saved it</button>
        </div>
      )}

      <ErrorBox error={error} title="Could not load your keys." />
      {!items && !error && <Loading />}
      {items && active.length === 0 && (
        <Empty title="No active API keys">
          <p>Create one above to call your deployments from code.</p>
        </Empty>
      )}
      {active.length > 0 && (
        <div class="table-wrap">
          <table class="table table-cards" data-testid="keys">
            <caption class="sr-only">Active API keys</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {active.map((k) => (
                <tr key={k.id} data-key-id={k.id}>
                  <td data-label="Name">{k.name}</td>
                  <td data-label="Key" class="mono">{k.prefix}…</td>
                  <td data-label="Scopes">{k.scopes.join(', ')}</td>
                  <td data-label="Created">{fmtDate(k.created_at)}</td>
                  <td data-label="Last used">{k.last_used_at ? fmtDate(k.last_used_at) : 'never'}</td>
                  <td data-label=""><button type="button" class="btn btn-small btn-danger-outline" aria-label={`Revoke key ${k.name}`} onClick={() => setRevoking(k)}>Revoke</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoked.length > 0 && (
        <details class="advanced">
          <summary>Revoked keys ({revoked.length})</summary>
          <ul class="plain" data-testid="revoked-keys">
            {revoked.map((k) => <li key={k.id}><span class="mono">{k.prefix}…</span> {k.name} <span class="badge badge-bad">revoked</span></li>)}
          </ul>
        </details>
      )}
      <ConfirmDialog open={!!revoking} title={`Revoke “${revoking?.name ?? ''}”?`} confirmLabel="Revoke key" danger busy={revokeBusy}
                     onConfirm={revoke} onCancel={() => { setRevoking(null); setRevokeError(null); }}>
        <p>Requests using this key will be refused at once. This cannot be undone.</p>
        <ErrorBox error={revokeError} />
      </ConfirmDialog>
    </section>
  );
}
