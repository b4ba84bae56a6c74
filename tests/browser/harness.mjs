// What the browser tests stand on: a real `kreki serve` on its own fresh database and port, accounts
// made with `kreki user create`, a helper for the HTTP API, Debian's Chromium driven by
// playwright-core, screenshots, and a tiny runner that prints `N passed, M failed`.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const require = createRequire(join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

export const SCREENSHOTS = join(here, 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const DATABASE_SERVER = process.env.KREKI_BROWSER_PG || 'postgres://postgres@127.0.0.1:5432';

export function kreki() {
  if (process.env.KREKI_BIN) return process.env.KREKI_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'kreki-target');
  return join(target, 'debug', 'kreki');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function psql(sql) {
  const result = spawnSync('psql', [`${DATABASE_SERVER}/postgres`, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
}

/** The newest modification time under `dir`, in milliseconds (node_modules left out). */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** The pages are compiled into `kreki`: testing an older binary would test older pages. */
function checkBinaryIsCurrent() {
  let built;
  try {
    built = statSync(kreki()).mtimeMs;
  } catch {
    throw new Error(`${kreki()} is missing: run \`cargo build --bin kreki\` first`);
  }
  const compiled = ['dashboard', 'app', 'volunteer', 'trainer', 'admin', 'shared', 'vendor'].map((folder) => newest(join(root, 'web', folder)));
  if (Math.max(...compiled) > built) {
    throw new Error(`web/ changed after ${kreki()} was built: run \`cargo build --bin kreki\` first`);
  }
}

/** Waits (up to 30 s) for `/readyz` of the kreki in `child`; false when it exited first. */
async function waitUntilReady(child, base) {
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) return false;
    try {
      const response = await fetch(`${base}/readyz`);
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A running `kreki serve --migrate` on a database of its own, with `extraEnv` (KREKI_* settings)
 *  on top; `stop()` ends both. `args(dir)` gives other arguments instead (for example `kreki demo
 *  --data-dir DIR`), `dir` being a temporary directory of this server's own. */
export async function startKreki(extraEnv = {}, { args = () => ['serve', '--migrate'] } = {}) {
  checkBinaryIsCurrent();
  const dir = mkdtempSync(join(tmpdir(), 'kreki-browser-'));
  const database = `kreki_browser_${randomUUID().replaceAll('-', '')}`;
  psql(`CREATE DATABASE ${database}`);
  const env = {
    PATH: process.env.PATH,
    KREKI_DATABASE__URL: `${DATABASE_SERVER}/${database}`,
    KREKI_LOG__FILTER: process.env.TEST_LOG ? 'info' : 'warn',
    KREKI_AUTH__SIGNING_KEY_FILE: join(dir, 'signing-key.pem'),
    ...extraEnv,
  };
  const keys = spawnSync(kreki(), ['keys', 'generate', '--out', env.KREKI_AUTH__SIGNING_KEY_FILE], { env, encoding: 'utf8' });
  if (keys.status !== 0) throw new Error(`kreki keys generate failed (is ${kreki()} built?): ${keys.stderr}`);
  // A free port can be taken by another process before kreki binds it: then try another one.
  let child;
  let base;
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    env.KREKI_SERVER__LISTEN = `127.0.0.1:${port}`;
    base = `http://127.0.0.1:${port}`;
    child = spawn(kreki(), args(dir), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (chunk) => {
      if (process.env.TEST_LOG) process.stderr.write(chunk);
      log = (log + chunk).slice(-4000);
    });
    const up = await waitUntilReady(child, base);
    if (up) break;
    if (/Address already in use/.test(log) && attempt < 3) continue;
    // Leave nothing behind: the database and the key directory go with the failed start.
    child.kill('SIGKILL');
    try {
      psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    throw new Error(`kreki did not become ready (exit ${child.exitCode}):\n${log}`);
  }
  return {
    base,
    /** Runs `sql` on this server's database (as the bridge's or dispatch's own tables hold it);
     *  answers psql's unaligned output, trimmed. */
    sql(sql) {
      const result = spawnSync('psql', [`${DATABASE_SERVER}/${database}`, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
      return result.stdout.trim();
    },
    /** Runs another `kreki` command against this server's database (`guidance load-builtin`). */
    cli(args) {
      const ran = spawnSync(kreki(), args, { env, encoding: 'utf8' });
      if (ran.status !== 0) throw new Error(`kreki ${args.join(' ')} failed: ${ran.stderr}`);
      return ran.stdout;
    },
    /** Creates an account with `roles` through the CLI, as an operator would. */
    user(phone, password, name, roles = []) {
      const args = ['user', 'create', '--phone', phone, '--password', password, '--name', name];
      for (const role of roles) args.push('--role', role);
      const made = spawnSync(kreki(), args, { env, encoding: 'utf8' });
      if (made.status !== 0) throw new Error(`kreki user create failed: ${made.stderr}`);
      const id = made.stdout.match(/created account ([0-9a-f-]{36})/)?.[1] ?? null;
      return { phone, password, name, id };
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => {
        if (child.exitCode !== null) resolve();
        else child.once('exit', resolve);
        setTimeout(resolve, 10000);
      });
      try {
        psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Calls the API as `who` ({phone, password}); answers {status, json}. */
export async function apiCall(base, who, method, path, body, headers = {}) {
  let token = who?.token;
  if (who && !token) {
    const login = await fetch(`${base}/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: who.phone, password: who.password }),
    });
    token = (await login.json()).access_token;
    who.token = token;
  }
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

/** Debian's Chromium, headless without a GPU, with a fresh profile (playwright makes one per launch). */
export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** Writes a full-page screenshot to tests/browser/screenshots/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Fails with `message` unless `condition` holds. */
export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

/** Runs `tests` ([name, fn]) one after another; prints each and the closing count; returns failures. */
export async function run(tests, context) {
  const only = process.env.BROWSER_TEST_FILTER;
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of tests) {
    if (only && !name.includes(only)) continue;
    const started = Date.now();
    try {
      await fn(context);
      passed += 1;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed += 1;
      console.log(`FAIL ${name} (${Date.now() - started} ms)\n     ${String(error?.stack ?? error).split('\n').join('\n     ')}`);
      // What every page showed when it failed, for the person reading the log.
      let n = 0;
      for (const open of context.browser?.contexts() ?? []) {
        for (const page of open.pages()) {
          n += 1;
          await screenshot(page, `FAILED-${failed}-${n}`).catch(() => {});
        }
        await open.close().catch(() => {});
      }
    }
  }
  console.log(`browser: ${passed} passed, ${failed} failed`);
  return failed;
}
