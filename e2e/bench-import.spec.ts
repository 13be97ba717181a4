/// <reference lib="dom" />
/**
 * Benchmark (runs only with SEV_ATTEST_BENCH=1): importing a 256 MiB initrd through the browser UI —
 * time until its SHA-256 shows, against `openssl dgst -sha256` of the same file — and the renderer's
 * longest main-thread block meanwhile (PerformanceObserver 'longtask' entries, which Chromium reports
 * from 50 ms, plus the largest gap of a 5 ms interval timer for finer resolution).
 * Figures go to stdout and test-results/bench-import.json.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, openScreen, signIn, test, waitReady } from './serve-fixture';

/** 256 MiB as the issue asks; SEV_ATTEST_BENCH_MIB picks another size. */
const SIZE = Number(process.env.SEV_ATTEST_BENCH_MIB ?? 256) * 1024 * 1024;

test.skip(process.env.SEV_ATTEST_BENCH !== '1', 'benchmark: set SEV_ATTEST_BENCH=1 to run it');

test(`import a ${SIZE / 1024 / 1024} MiB initrd: time to SHA-256 and the longest main-thread task`, async ({
  page,
  service,
}) => {
  test.setTimeout(300_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'sev-attest-bench-'));
  const file = path.join(dir, 'bench-initrd.img');
  try {
    const fd = openSync(file, 'w');
    const chunk = Buffer.alloc(8 * 1024 * 1024);
    for (let done = 0; done < SIZE; done += chunk.length) writeSync(fd, randomFillSync(chunk));
    closeSync(fd);

    // openssl: best of 3 (the page cache is warm after the first).
    const opensslRuns: number[] = [];
    let opensslHash = '';
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const out = execFileSync('openssl', ['dgst', '-sha256', '-r', file], { encoding: 'utf8' });
      opensslRuns.push(performance.now() - t);
      opensslHash = out.split(' ')[0]!;
    }

    await signIn(page, service);
    await waitReady(page);
    await openScreen(page, 'Artifacts');
    await page.getByLabel('Import as').selectOption('initrd');
    await page.evaluate(() => {
      const w = window as unknown as { __bench: { longTasks: number[]; maxGap: number; stop: () => void } };
      const longTasks: number[] = [];
      const obs = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) longTasks.push(e.duration);
      });
      obs.observe({ type: 'longtask', buffered: false });
      let last = performance.now();
      const bench = { longTasks, maxGap: 0, stop: () => undefined as void };
      const timer = setInterval(() => {
        const now = performance.now();
        bench.maxGap = Math.max(bench.maxGap, now - last - 5);
        last = now;
      }, 5);
      bench.stop = () => {
        clearInterval(timer);
        obs.disconnect();
      };
      w.__bench = bench;
    });
    const t0 = Date.now();
    await page.getByTestId('artifact-file-input').setInputFiles(file);
    const sha = page.getByTestId('artifact-details').getByTestId('artifact-sha256');
    await expect(sha).toHaveText(opensslHash, { timeout: 240_000 });
    const uiMs = Date.now() - t0;
    const main = await page.evaluate(() => {
      const b = (window as unknown as { __bench: { longTasks: number[]; maxGap: number; stop: () => void } })
        .__bench;
      b.stop();
      return { longTasks: b.longTasks, maxGap: b.maxGap };
    });
    const opensslMs = Math.min(...opensslRuns);
    const figures = {
      sizeMiB: SIZE / 1024 / 1024,
      uiMs,
      opensslMs: Math.round(opensslMs),
      ratio: Number((uiMs / opensslMs).toFixed(2)),
      uiMiBps: Math.round(SIZE / 1024 / 1024 / (uiMs / 1000)),
      longTaskCount: main.longTasks.length,
      longestLongTaskMs: main.longTasks.length ? Math.round(Math.max(...main.longTasks)) : 0,
      maxTimerGapMs: Math.round(main.maxGap),
    };
    console.log(`bench-import ${JSON.stringify(figures)}`);
    mkdirSync('test-results', { recursive: true });
    writeFileSync('test-results/bench-import.json', JSON.stringify(figures, null, 2) + '\n');
    expect(figures.longestLongTaskMs, 'longest main-thread task (ms)').toBeLessThan(50);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
