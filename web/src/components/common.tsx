import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';

// Shows an API error: its message, its code and the request id to quote in a bug report.
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error as Partial<ApiError> & Error;
  const details = e instanceof ApiError && e.details && typeof e.details === 'object' && Object.keys(e.details as object).length
    ? JSON.stringify(e.details)
    : null;
  return (
    <div class="alert alert-error" role="alert">
      {title && <strong>{title} </strong>}
      <span class="alert-message">{e.message || String(error)}</span>
      {e instanceof ApiError && (
        <div class="alert-meta">
          <code>{e.code}</code>
          {e.requestId && <span> · request id <code>{e.requestId}</code></span>}
          {details && <span> · <code>{details}</code></span>}
        </div>
      )}
    </div>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'success' | 'warn'; children: ComponentChildren }) {
  return <div class={`alert alert-${kind}`} role="status">{children}</div>;
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return <p class="loading" role="status" aria-live="polite"><span class="spinner" aria-hidden="true" />{label}</p>;
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  const cls = status === 'active' || status === 'operational' ? 'ok'
    : status === 'failed' || status === 'down' ? 'bad'
    : status === 'validating' ? 'pending' : 'warn';
  return <span class={`badge badge-${cls}`} data-status={status}>{status}</span>;
}

async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'offscreen';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function CopyButton({ text, label = 'Copy', what }: { text: string; label?: string; what?: string }) {
  const [state, setState] = useState<'idle' | 'ok' | 'fail'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const t = setTimeout(() => setState('idle'), 2000);
    return () => clearTimeout(t);
  }, [state]);
  return (
    <button type="button" class="btn btn-small" aria-label={what ? `Copy ${what}` : label}
            onClick={async () => setState((await copyText(text)) ? 'ok' : 'fail')}>
      {state === 'ok' ? 'Copied' : state === 'fail' ? 'Copy failed' : label}
    </button>
  );
}

// A modal confirmation built on <dialog>: focus is trapped, Escape cancels.
export function ConfirmDialog({ open, title, children, confirmLabel, danger, busy, onConfirm, onCancel }: {
  open: boolean; title: string; children?: ComponentChildren; confirmLabel: string; danger?: boolean;
  busy?: boolean; onConfirm: () => void; onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="dialog-title" onCancel={(e) => { e.preventDefault(); onCancel(); }}>
      <h2 id="dialog-title">{title}</h2>
      <div class="dialog-body">{children}</div>
      <div class="dialog-actions">
        <button type="button" class="btn" onClick={onCancel} disabled={busy}>Cancel</button>
        <button type="button" class={`btn ${danger ? 'btn-danger' : 'btn-primary'}`} onClick={onConfirm} disabled={busy}>
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export function Field({ id, label, hint, children }: { id: string; label: string; hint?: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
    </div>
  );
}
