import { useState } from 'preact/hooks';
import { api, setToken } from '../api';
import { BASE, linkClick, navigate } from '../router';
import { ErrorBox, Field, Notice } from '../components/common';
import { takeSessionMessage } from '../app';

export function LoginPage() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [message] = useState(takeSessionMessage);

  async function submit(ev: Event) {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { email, password }, auth: false });
      setToken(r.access_token);
      navigate(`${BASE}/deployments`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }

  return (
    <section class="auth-card">
      <h1>Log in</h1>
      {message && <Notice kind="warn">{message}</Notice>}
      <ErrorBox error={error} title="Could not log in:" />
      <form onSubmit={submit}>
        <Field id="login-email" label="Email">
          <input id="login-email" type="email" autocomplete="email" required value={email}
                 onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </Field>
        <Field id="login-password" label="Password">
          <input id="login-password" type="password" autocomplete="current-password" required value={password}
                 onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </Field>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
      </form>
      <p class="auth-switch">No account yet? <a href={`${BASE}/signup`} onClick={linkClick}>Sign up</a></p>
    </section>
  );
}

export function SignupPage() {
  const [form, setForm] = useState({ email: '', username: '', full_name: '', password: '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });

  async function submit(ev: Event) {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, string> = { email: form.email, username: form.username, password: form.password };
      if (form.full_name.trim()) body.full_name = form.full_name.trim();
      const r = await api<{ access_token: string }>('POST', '/api/v1/auth/register', { body, auth: false });
      setToken(r.access_token);
      navigate(`${BASE}/deployments`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }

  return (
    <section class="auth-card">
      <h1>Create your account</h1>
      <ErrorBox error={error} title="Could not sign up:" />
      <form onSubmit={submit}>
        <Field id="signup-email" label="Email">
          <input id="signup-email" type="email" autocomplete="email" required value={form.email} onInput={set('email')} />
        </Field>
        <Field id="signup-username" label="Username" hint="3–50 characters: letters, digits, _ . -">
          <input id="signup-username" autocomplete="username" required minLength={3} maxLength={50}
                 pattern="[A-Za-z0-9_.\-]+" aria-describedby="signup-username-hint" value={form.username} onInput={set('username')} />
        </Field>
        <Field id="signup-name" label="Full name (optional)">
          <input id="signup-name" autocomplete="name" value={form.full_name} onInput={set('full_name')} />
        </Field>
        <Field id="signup-password" label="Password" hint="At least 8 characters.">
          <input id="signup-password" type="password" autocomplete="new-password" required minLength={8}
                 aria-describedby="signup-password-hint" value={form.password} onInput={set('password')} />
        </Field>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>{busy ? 'Creating account…' : 'Sign up'}</button>
      </form>
      <p class="auth-switch">Already have an account? <a href={`${BASE}/login`} onClick={linkClick}>Log in</a></p>
    </section>
  );
}
