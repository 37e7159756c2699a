/**
 * A real browser for the dashboard's tests: playwright-core driving the
 * system's Chromium (Debian: `apt-get install -y chromium`). Tests skip, and
 * say why, when there is none.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';

/** RAFTKV_CHROMIUM names another binary. */
export const CHROMIUM = process.env.RAFTKV_CHROMIUM ?? '/usr/bin/chromium';

export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  return `no browser at ${CHROMIUM}: install one (apt-get install -y chromium) or set RAFTKV_CHROMIUM`;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // As root in a container, Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 30_000,
  });
}

/** What the page said on its console and what it threw, kept for the test to check. */
export interface PageLog {
  errors: string[];
  /** Errors that are failed requests (a member the test stopped), kept apart. */
  failedRequests: string[];
  /**
   * Every answer of 400 or more as "STATUS METHOD PATH?QUERY": Chromium's console line for
   * one names neither the request nor its URL.
   */
  errorAnswers: string[];
}

export function recordConsole(page: Page): PageLog {
  const log: PageLog = { errors: [], failedRequests: [], errorAnswers: [] };
  page.on('response', (r) => {
    if (r.status() < 400) return;
    const url = new URL(r.url());
    log.errorAnswers.push(`${r.status()} ${r.request().method()} ${url.pathname}${url.search}`);
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/Failed to load resource|net::ERR_/.test(m.text())) log.failedRequests.push(m.text());
    else log.errors.push(m.text());
  });
  page.on('pageerror', (e) => log.errors.push(`uncaught: ${e.message}`));
  return log;
}
