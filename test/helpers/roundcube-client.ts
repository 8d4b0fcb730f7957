// A browser's HTTP conversation with Roundcube 1.6 (test/helpers/roundcube.ts),
// without the browser: Node's fetch against 127.0.0.1, cookies kept by hand, the
// request token taken from the login form and from the mail page, AJAX actions
// sent with X-Roundcube-Request as Roundcube's JavaScript sends them.
//
// Every method throws with the status and a piece of the body when Roundcube
// answers with anything but success (HTTP error, a redirect to the login page, an
// AJAX reply that shows an error message), so a walk that "works" did work.

export interface MessageRow {
  uid: number;
  subject: string;
  /** Roundcube's row flags: seen, flagged, deleted, answered, ... (only the true ones). */
  flags: string[];
}

export interface ListResult {
  rows: MessageRow[];
  /** env.messagecount of the reply. */
  count: number;
}

/** Milliseconds of every HTTP request this client made, in order. */
export interface RequestTiming {
  what: string;
  ms: number;
}

export class RoundcubeError extends Error {}

export class RoundcubeClient {
  readonly #base: string;
  readonly #cookies = new Map<string, string>();
  #token = '';
  readonly timings: RequestTiming[] = [];

  /** base: http://127.0.0.1:PORT/ */
  constructor(base: string) {
    if (!/^http:\/\/(127\.0\.0\.1|\[::1\]):\d+\/$/.test(base)) throw new Error(`RoundcubeClient talks to loopback only, not ${base}`);
    this.#base = base;
  }

  get requestToken(): string {
    return this.#token;
  }

  async #request(what: string, query: Record<string, string>, init: { form?: Record<string, string>; ajax?: boolean } = {}): Promise<{ status: number; location: string | null; body: string }> {
    const url = `${this.#base}?${new URLSearchParams(query).toString()}`;
    const headers: Record<string, string> = {};
    if (this.#cookies.size > 0) headers.cookie = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.ajax) {
      headers['x-roundcube-request'] = this.#token;
      headers['x-requested-with'] = 'XMLHttpRequest';
    }
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const started = performance.now();
    const res = await fetch(url, { method: body === undefined ? 'GET' : 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    this.timings.push({ what, ms: performance.now() - started });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = value === '-del-' || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return { status: res.status, location: res.headers.get('location'), body: text };
  }

  #fail(what: string, r: { status: number; location: string | null; body: string }, why: string): never {
    throw new RoundcubeError(`Roundcube ${what}: ${why} (HTTP ${r.status}${r.location ? ` -> ${r.location}` : ''}): ${r.body.slice(0, 600)}`);
  }

  /** GET a page; it must be a 200 and not the login form (a lost session). */
  async #page(what: string, query: Record<string, string>): Promise<string> {
    const r = await this.#request(what, query);
    if (r.status !== 200) this.#fail(what, r, 'not 200');
    if (r.body.includes('id="login-form"')) this.#fail(what, r, 'got the login form: the session is gone');
    return r.body;
  }

  /** An AJAX action (_remote=1): JSON whose exec must not show an error. */
  async #ajax(action: string, query: Record<string, string>, form?: Record<string, string>): Promise<{ env?: Record<string, unknown>; exec?: string }> {
    const r = await this.#request(action, { _task: 'mail', _action: action, _remote: '1', ...query }, { ajax: true, form: form ? { ...form, _remote: '1' } : undefined });
    if (r.status !== 200) this.#fail(action, r, 'not 200');
    let json: { env?: Record<string, unknown>; exec?: string };
    try {
      json = JSON.parse(r.body) as typeof json;
    } catch {
      this.#fail(action, r, 'not JSON');
    }
    const err = /display_message\("((?:[^"\\]|\\.)*)","error"/.exec(json.exec ?? '');
    if (err) this.#fail(action, r, `error shown: ${err[1]}`);
    if (/this\.(session_error|redirect)\(/.test(json.exec ?? '')) this.#fail(action, r, 'session error');
    return json;
  }

  /** The login form, then POST it; follows the redirect to the mail page. */
  async login(user: string, pass: string): Promise<void> {
    const form = await this.#request('login form', { _task: 'login' });
    const token = /name="_token" value="([^"]+)"/.exec(form.body)?.[1];
    if (form.status !== 200 || !token) this.#fail('login form', form, 'no _token in the login form');
    const r = await this.#request('login', { _task: 'login' }, {
      form: { _token: token, _task: 'login', _action: 'login', _timezone: 'UTC', _url: '', _user: user, _pass: pass },
    });
    if (r.status !== 302 || !r.location?.includes('_task=mail')) this.#fail('login', r, `login of ${user} refused`);
    await this.openMailbox('INBOX');
  }

  /** The mail page of a mailbox (as after login or a click on a folder): takes the request token from it. */
  async openMailbox(mbox: string): Promise<void> {
    const html = await this.#page('mail page', { _task: 'mail', _mbox: mbox });
    const token = /"request_token":"([^"]+)"/.exec(html)?.[1];
    if (!token) throw new RoundcubeError(`Roundcube mail page without request_token: ${html.slice(0, 300)}`);
    this.#token = token;
  }

  /** The message list of a mailbox, first page (what the page loads by AJAX after openMailbox). */
  async list(mbox = 'INBOX'): Promise<ListResult> {
    const json = await this.#ajax('list', { _mbox: mbox, _page: '1' });
    const rows: MessageRow[] = [];
    // this.add_message_row(21,{"subject":"..."...},{"seen":1,...},false);
    const re = /this\.add_message_row\((\d+),(\{.*?\}),(\{.*?\}),(?:true|false)\);\n/g;
    for (const m of (json.exec ?? '').matchAll(re)) {
      const cols = JSON.parse(m[2]!) as { subject?: string };
      const flags = JSON.parse(m[3]!) as Record<string, unknown>;
      rows.push({
        uid: Number(m[1]),
        subject: cols.subject ?? '',
        flags: Object.keys(flags).filter((k) => flags[k] === 1 || flags[k] === true).sort(),
      });
    }
    return { rows, count: Number(json.env?.messagecount ?? rows.length) };
  }

  /** The preview pane of one message (marks it \Seen, as in a browser). */
  preview(uid: number, mbox = 'INBOX'): Promise<string> {
    return this.#page('preview', { _task: 'mail', _action: 'preview', _uid: String(uid), _mbox: mbox, _framed: '1' });
  }

  /** flag: read, unread, flagged, unflagged, delete, undelete. */
  async mark(uids: number[], flag: string, mbox = 'INBOX'): Promise<void> {
    await this.#ajax('mark', {}, { _uid: uids.join(','), _flag: flag, _mbox: mbox });
  }

  /** Drag to another folder (or the Delete key with a Trash folder). Returns the source folder's new count. */
  async move(uids: number[], from: string, to: string): Promise<number> {
    const json = await this.#ajax('move', {}, { _uid: uids.join(','), _mbox: from, _target_mbox: to });
    return Number(json.env?.messagecount);
  }

  /** Settings > Folders: the folder names shown. */
  async folders(): Promise<string[]> {
    const html = await this.#page('folders', { _task: 'settings', _action: 'folders' });
    const names: string[] = [];
    for (const m of html.matchAll(/id="rcmli([A-Za-z0-9_-]*)"/g)) {
      const name = Buffer.from(m[1]!, 'base64url').toString('utf8');
      if (name !== '*') names.push(name);
    }
    return names;
  }

  async logout(): Promise<void> {
    const r = await this.#request('logout', { _task: 'logout', _token: this.#token });
    if (r.status !== 302 && r.status !== 200) this.#fail('logout', r, 'logout failed');
    this.#cookies.clear();
  }
}
