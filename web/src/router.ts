// A tiny history-API router. Every dashboard page lives under /ui/ (the server answers
// index.html for any GET under /ui/ that is not a built asset).
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui';

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  const url = to.startsWith('/') ? to : `${BASE}/${to}`;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((fn) => fn());
  if (!replace) window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => listeners.forEach((fn) => fn()));

export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const fn = () => setTick((t) => t + 1);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

// Updates the query string without adding a history entry (filters, pagination).
export function setQuery(params: Record<string, string | number | null | undefined>): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
  listeners.forEach((fn) => fn());
}

// Plain <a href> that navigates in-page (middle-click / ctrl-click still open a new tab).
export function linkClick(ev: MouseEvent): void {
  const a = ev.currentTarget as HTMLAnchorElement;
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href') || BASE);
}
