// Screenshots of the status page at a desktop and a phone width, in headless Chromium
// (Debian's package), and a check that the page never scrolls sideways. Run by
// docs/screenshots.sh against a running demo; exits 1 on horizontal overflow.
import { chromium } from 'playwright-core';

const url = process.argv[2] ?? 'http://127.0.0.1:9153/';
const out = process.argv[3] ?? 'docs';
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = false;
for (const [name, width, height] of [['status-1200', 1200, 900], ['status-phone', 390, 844]]) {
  const page = await browser.newPage({ viewport: { width, height } });
  await page.goto(url);
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.screenshot({ path: `${out}/${name}.png`, fullPage: false });
  console.log(`${name}: ${width}px wide, horizontal overflow ${overflow}px`);
  if (overflow > 0) failed = true;
  if (name === 'status-1200') {
    await page.goto(url.replace(/\/$/, '') + '/explain?format=html&name=vault.kemp.net&type=A&client=81.2.69.142');
    await page.screenshot({ path: `${out}/explain-1200.png` });
  }
  await page.close();
}
await browser.close();
process.exit(failed ? 1 : 0);
