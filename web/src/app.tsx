import { useEffect, useState } from 'preact/hooks';
import { api, getToken, onTokenChange, setToken, setUnauthorizedHandler, type User } from './api';
import { BASE, linkClick, navigate, useLocation } from './router';
import { LoginPage, SignupPage } from './pages/auth';
import { DeploymentsPage } from './pages/deployments';
import { NewDeploymentPage } from './pages/new-deployment';
import { DeploymentPage } from './pages/deployment';
import { ApiKeysPage } from './pages/api-keys';
import { StatusPage } from './pages/status';
import { Empty } from './components/common';

// Pages that need no sign-in.
const PUBLIC = new Set([`${BASE}/login`, `${BASE}/signup`, `${BASE}/status`]);

let sessionMessage: string | null = null;
export function takeSessionMessage(): string | null {
  const m = sessionMessage;
  sessionMessage = null;
  return m;
}

export function logout(message?: string): void {
  sessionMessage = message ?? null;
  setToken(null);
  navigate(`${BASE}/login`, true);
}

setUnauthorizedHandler(() => logout('Your session has expired. Please log in again.'));

function Nav({ path, user }: { path: string; user: User | null }) {
  const link = (href: string, label: string) => {
    const current = path === href || path.startsWith(href + '/');
    return (
      <a href={href} onClick={linkClick} class={current ? 'current' : undefined} aria-current={current ? 'page' : undefined}>
        {label}
      </a>
    );
  };
  const token = getToken();
  return (
    <header class="topbar">
      <a class="brand" href={token ? `${BASE}/deployments` : `${BASE}/login`} onClick={linkClick}>
        <span class="brand-mark" aria-hidden="true">◆</span> ServeML
      </a>
      <nav aria-label="Main">
        {token && link(`${BASE}/deployments`, 'Deployments')}
        {token && link(`${BASE}/keys`, 'API keys')}
        {link(`${BASE}/status`, 'Status')}
      </nav>
      <div class="topbar-user">
        {token ? (
          <>
            {user && <span class="user-name" title={user.email}>{user.username}</span>}
            <button type="button" class="btn btn-small" onClick={() => logout()}>Log out</button>
          </>
        ) : (
          <>
            {link(`${BASE}/login`, 'Log in')}
            {link(`${BASE}/signup`, 'Sign up')}
          </>
        )}
      </div>
    </header>
  );
}

export function App() {
  const { path } = useLocation();
  const [token, setTok] = useState(getToken());
  const [user, setUser] = useState<User | null>(null);

  useEffect(() => onTokenChange((t) => { setTok(t); if (!t) setUser(null); }), []);
  useEffect(() => {
    if (!token) return;
    let live = true;
    api<User>('GET', '/api/v1/auth/me').then((u) => live && setUser(u)).catch(() => {});
    return () => { live = false; };
  }, [token]);

  // "/" and "/ui" go to the natural start page; private pages need a token.
  const p = path.replace(/\/+$/, '') || '/';
  let redirect: string | null = null;
  if (p === '/' || p === BASE) redirect = token ? `${BASE}/deployments` : `${BASE}/login`;
  else if (!token && !PUBLIC.has(p)) redirect = `${BASE}/login`;
  else if (token && (p === `${BASE}/login` || p === `${BASE}/signup`)) redirect = `${BASE}/deployments`;
  useEffect(() => {
    if (redirect) navigate(redirect, true);
  }, [redirect]);

  let page = null;
  let m: RegExpMatchArray | null;
  if (redirect) page = null;
  else if (p === `${BASE}/login`) page = <LoginPage />;
  else if (p === `${BASE}/signup`) page = <SignupPage />;
  else if (p === `${BASE}/status`) page = <StatusPage />;
  else if (p === `${BASE}/deployments`) page = <DeploymentsPage />;
  else if (p === `${BASE}/deployments/new`) page = <NewDeploymentPage />;
  else if ((m = p.match(/^\/ui\/deployments\/([^/]+)$/))) page = <DeploymentPage id={decodeURIComponent(m[1])} key={m[1]} />;
  else if (p === `${BASE}/keys`) page = <ApiKeysPage />;
  else {
    page = (
      <Empty title="Page not found">
        <p>There is no page at <code>{path}</code>. <a href={`${BASE}/deployments`} onClick={linkClick}>Go to your deployments</a>.</p>
      </Empty>
    );
  }

  useEffect(() => {
    // Move focus to the page heading after navigation, for keyboard and screen-reader users.
    const h = document.querySelector<HTMLElement>('main h1');
    if (h) { h.tabIndex = -1; h.focus({ preventScroll: true }); }
  }, [p]);

  return (
    <>
      <a class="skip-link" href="#main">Skip to content</a>
      <Nav path={p} user={user} />
      <main id="main">{page}</main>
    </>
  );
}
