// Opt-in (bench/roundcube-browser.sh): a real browser clicks through Roundcube in
// front of our proxy — Debian's Chromium, headless, driven by playwright-core (not a
// dependency of the project: the script installs it outside the repo and passes its
// directory in PLAYWRIGHT_CORE_DIR). Screenshots of each step go to --out. At the
// end the mailbox is read straight from Dovecot: the message another client had
// flagged \Deleted must still be there after the browser deleted (moved to Trash)
// another one.
import { createRequire } from 'node:module';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startDovecot } from '../helpers/dovecot.js';
import { startProxy } from '../helpers/proxy.js';
import { startRoundcube } from '../helpers/roundcube.js';
import { DELETED_BY_OTHER_CLIENT, flagDeletedElsewhere, mailboxState } from '../helpers/roundcube-walk.js';

/** The few playwright-core calls used here (it is loaded at run time, without its types). */
interface Locator { click(): Promise<void>; waitFor(o?: { state?: string; timeout?: number }): Promise<void>; count(): Promise<number>; first(): Locator }
interface Page {
  goto(url: string): Promise<unknown>;
  fill(sel: string, v: string): Promise<void>;
  click(sel: string): Promise<void>;
  keyboard: { press(key: string): Promise<void> };
  locator(sel: string): Locator;
  waitForSelector(sel: string, o?: { timeout?: number; state?: string }): Promise<unknown>;
  waitForFunction(fn: string, arg?: unknown, o?: { timeout?: number }): Promise<unknown>;
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  setDefaultTimeout(ms: number): void;
}
interface Browser { newPage(o?: { viewport?: { width: number; height: number } }): Promise<Page>; close(): Promise<void> }
interface Chromium { launch(o: { executablePath: string; headless: boolean; args: string[] }): Promise<Browser> }

/** Roundcube's id of a message row: 'rcmrow' + the UID in base64url without padding (html_identifier). */
const row = (uid: number): string => `#rcmrow${Buffer.from(String(uid)).toString('base64url')}`;

const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const out = path.resolve(outIdx > 0 ? process.argv[outIdx + 1]! : 'bench/results/roundcube-browser');
  const dir = process.env.PLAYWRIGHT_CORE_DIR;
  if (!dir) throw new Error('PLAYWRIGHT_CORE_DIR is not set (run bench/roundcube-browser.sh)');
  const { chromium } = createRequire(path.join(dir, 'package.json'))('playwright-core') as { chromium: Chromium };
  await mkdir(out, { recursive: true });

  const dovecot = await startDovecot({ users: 1 });
  const proxy = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
  const rc = await startRoundcube({ imapPort: proxy.port });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS });
  const shots: string[] = [];
  let logins: number;
  try {
    await flagDeletedElsewhere(dovecot.port, 'user1', 'pass1');
    const loginsBefore = await dovecot.loginCount('user1');
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(30_000);
    const shot = async (name: string): Promise<void> => {
      const file = path.join(out, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file });
      shots.push(file);
    };
    try {
    await page.goto(rc.url);
    await page.waitForSelector('#rcmloginuser');
    await shot('login');
    await page.fill('#rcmloginuser', 'user1');
    await page.fill('#rcmloginpwd', 'pass1');
    await page.click('#rcmloginsubmit');
    await page.waitForSelector('#messagelist tbody tr');
    await shot('inbox');
    // open message UID 1 in the preview pane
    await page.click(row(1));
    await page.waitForFunction(`(() => { const f = document.querySelector('#messagecontframe'); return f && f.contentDocument && f.contentDocument.querySelector('.subject, #message-header'); })()`);
    await shot('preview');
    // Delete = move to Trash (Roundcube's default with a Trash folder)
    await page.click(row(3));
    // Roundcube ignores commands while a request (the preview) is running
    await page.waitForFunction(`(() => { const f = document.querySelector('#messagecontframe'); return !window.rcmail.busy && f && f.contentDocument && f.contentDocument.readyState === 'complete' && f.contentDocument.body.textContent.includes('Nachricht 3'); })()`);
    // the toolbar's Delete, enabled once the row is selected (a Delete key press can
    // go to the preview frame instead of the list)
    await page.click('#toolbar-menu a.delete:not(.disabled)');
    await page.locator(row(3)).waitFor({ state: 'hidden' });
    await shot('deleted');
    await page.click('#mailboxlist li.trash a');
    await page.waitForSelector('#messagelist tbody tr');
    await shot('trash');
    await page.click('#mailboxlist li.inbox a');
    await page.waitForSelector('#messagelist tbody tr');
    await page.click('a.logout');
    await page.waitForSelector('#rcmloginuser');
    await shot('logged-out');
    } catch (err) {
      await shot('failure').catch(() => undefined);
      throw err;
    }
    logins = (await dovecot.loginCount('user1')) - loginsBefore;
  } finally {
    await browser.close();
    await rc.stop();
    await proxy.stop();
  }
  const state = await mailboxState(dovecot.port, 'user1', 'pass1');
  await dovecot.stop();
  const kept = state.INBOX!.some((m) => m.uid === DELETED_BY_OTHER_CLIENT);
  console.log(`screenshots:\n${shots.map((s) => `  ${s}`).join('\n')}`);
  console.log(`INBOX ${state.INBOX!.length}, Trash ${state.Trash?.length ?? 0}; Dovecot logins of the browser session: ${logins}`);
  console.log(`UID ${DELETED_BY_OTHER_CLIENT} (\\Deleted by another client): ${kept ? 'still there' : 'EXPUNGED by the browser\'s delete'}`);
  if (!kept) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`roundcube-browser: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
