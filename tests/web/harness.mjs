// Shared helpers for the browser tests: start the real `serveml` binary on a free loopback
// port with a temporary data dir, make test models with the repo's Python venv, and drive
// Debian's Chromium through playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BINARY = process.env.SERVEML_BINARY || path.join(REPO, 'build', 'serveml');
export const PYTHON = process.env.SERVEML_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const OUT_DIR = process.env.WEB_TEST_OUTPUT || path.join(REPO, 'build', 'test-results', 'web');

fs.mkdirSync(OUT_DIR, { recursive: true });

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor(name) {
    this.name = name;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serveml-web-'));
    this.logPath = path.join(OUT_DIR, `${name}-server.log`);
    this.proc = null;
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 30_000) {
    if (!fs.existsSync(BINARY)) throw new Error(`serveml binary not found at ${BINARY} (set SERVEML_BINARY)`);
    this.port = await freePort();
    const log = fs.openSync(this.logPath, 'w');
    this.proc = spawn(BINARY, ['serve', '--host', '127.0.0.1', '--port', String(this.port), '--data-dir', path.join(this.dir, 'data'), '--exempt-loopback'],
                      { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = null;
    this.proc.on('exit', (code, sig) => { exited = { code, sig }; });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`server exited (${JSON.stringify(exited)}): ${this.logs().slice(-2000)}`);
      try {
        const r = await fetch(`${this.url}/health`);
        if (r.status === 200) return this;
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    throw new Error(`server did not become healthy: ${this.logs().slice(-2000)}`);
  }

  logs() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  // SIGTERM and wait; returns the exit code (the server must drain and exit 0).
  async stop() {
    if (!this.proc) return 0;
    const p = this.proc;
    this.proc = null;
    if (p.exitCode !== null) return p.exitCode;
    const done = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    const code = await done;
    clearTimeout(timer);
    fs.rmSync(this.dir, { recursive: true, force: true });
    return code;
  }
}

// Writes ONNX test models made with tests/e2e/models.py and returns, for each, its path and
// onnxruntime's output for `input`.
export function makeModels(specs, input) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serveml-web-models-'));
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(path.join(REPO, 'tests', 'e2e'))})
import numpy as np
import onnxruntime as ort
import models
specs = json.loads(sys.argv[1]); x = np.array([json.loads(sys.argv[2])], dtype=np.float32)
out = {}
for name, kwargs in specs.items():
    m = models.mlp(**kwargs)
    data = m.SerializeToString()
    p = sys.argv[3] + '/' + name + '.onnx'
    open(p, 'wb').write(data)
    sess = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    out[name] = {'path': p, 'expected': y[0].tolist()}
print(json.dumps(out))
`;
  const stdout = execFileSync(PYTHON, ['-c', script, JSON.stringify(specs), JSON.stringify(input), dir], { encoding: 'utf8' });
  return JSON.parse(stdout.trim().split('\n').pop());
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

// A fresh headless Chromium with its own new user-data-dir. Collects console errors and
// page errors; `assertClean()` fails on any (CSP violations show up there), ignoring the
// "Failed to load resource" lines Chromium logs for HTTP error answers the page handles.
export async function openBrowser(name, { viewport = { width: 1280, height: 900 } } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'serveml-web-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    acceptDownloads: false,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/Failed to load resource: the server responded with a status of (401|404|400|422)/.test(text)) return;
    problems.push(`console: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  let shot = 0;
  return {
    context,
    page,
    problems,
    async screenshot(step, opts = {}) {
      shot += 1;
      const file = path.join(OUT_DIR, `${name}-${String(shot).padStart(2, '0')}-${step}.png`);
      await page.screenshot({ path: file, fullPage: true, ...opts });
      return file;
    },
    assertClean() {
      if (problems.length) throw new Error(`browser reported problems:\n${problems.join('\n')}`);
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Fires dragenter/dragover/drop of a file on `selector`, as a user dragging it from the desktop.
export async function dropFile(page, selector, filePath, mime = 'application/octet-stream') {
  const b64 = fs.readFileSync(filePath).toString('base64');
  const name = path.basename(filePath);
  const dataTransfer = await page.evaluateHandle(({ b64, name, mime }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: mime }));
    return dt;
  }, { b64, name, mime });
  for (const type of ['dragenter', 'dragover', 'drop']) {
    await page.dispatchEvent(selector, type, { dataTransfer });
  }
}

export function uniqueUser(prefix = 'web') {
  const tag = Math.random().toString(16).slice(2, 10);
  return { email: `${prefix}-${tag}@example.com`, username: `${prefix}_${tag}`, password: 'correct-horse-battery' };
}

export function closeTo(actual, expected, tol = 1e-4) {
  const a = [actual].flat(Infinity);
  const e = [expected].flat(Infinity);
  if (a.length !== e.length) return false;
  return a.every((v, i) => Math.abs(v - e[i]) <= tol * Math.max(1, Math.abs(e[i])));
}
