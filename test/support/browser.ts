import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { requireTool } from './tools.js';

/**
 * Debian's chromium for the page tests (the agent panel), driven by playwright-core with no
 * browser download: a fresh profile folder per run, headless, no background networking (this
 * machine's closed network refuses it), and the bytes of every event stream the page reads.
 */

export interface PanelBrowser {
  context: BrowserContext;
  page: Page;
  /** Event streams (`.../events`) as the browser received them, by CDP request id. */
  streamed: Map<string, { url: string; text: string }>;
}

export async function openPanelBrowser(profileDir: string): Promise<PanelBrowser> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.PAYIVR_CHROMIUM ?? requireTool('chromium'),
    viewport: { width: 560, height: 520 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const streamed = new Map<string, { url: string; text: string }>();
  // Playwright cannot read the body of a response the page consumes as a stream: the event
  // stream's bytes are taken from the browser's own network layer (CDP) as they arrive.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => {
    if (!e.response.url.includes('/events')) return;
    streamed.set(e.requestId, { url: e.response.url, text: '' });
    void cdp
      .send('Network.streamResourceContent', { requestId: e.requestId })
      .then((r) => {
        const s = streamed.get(e.requestId);
        if (s !== undefined) s.text = Buffer.from(r.bufferedData, 'base64').toString('latin1') + s.text;
      })
      .catch(() => undefined);
  });
  cdp.on('Network.dataReceived', (e) => {
    const s = streamed.get(e.requestId);
    if (s !== undefined && e.data !== undefined) s.text += Buffer.from(e.data, 'base64').toString('latin1');
  });
  return { context, page, streamed };
}
