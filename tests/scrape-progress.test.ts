import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { JobInfo, JobLogEntry } from '../src-main/engine/api/contract/index.ts';
import { tmpDir } from './helpers/workspace.ts';

// The bundled demo site with its faults on (5xx, Retry-After, stalls, broken pages), started
// inside the job as the demo workspace's first start does.
describe('scrape progress lines', () => {
  it('say "retrying" with an ETA while a request waits to be tried again, and end with the hit rate', async () => {
    const engine = Engine.open(path.join(tmpDir(), 'ws'), { create: true });
    const messages: string[] = [];
    const off = engine.on((name, data) => {
      if (name === 'job.updated' && (data as JobInfo).kind === 'scrape') messages.push((data as JobInfo).message ?? '');
    });
    try {
      const job = engine.jobs.start('scrape', { baseUrl: 'demo', minId: 1, maxId: 80, concurrency: 4, retryDelayMs: 300, timeoutMs: 2000, maxRetryAfterMs: 1000, demoFaults: true });
      const final = await engine.jobs.wait(job.id);
      expect(final.state, final.error?.message).toBe('done');
      const result = final.result as { ok: number; gone: number; failed: number; retries: number; idsInRange: number };
      expect(result.retries).toBeGreaterThan(0);

      // while retrying: the retry, when the next try comes, and the time left for the whole range
      const retrying = messages.filter((m) => m.startsWith('retrying '));
      expect(retrying.length, messages.join('\n')).toBeGreaterThan(0);
      for (const m of retrying) expect(m).toMatch(/^retrying \(try \d+: .+\) in \d+(\.\d)? m?s; ETA (\d+s|\d+m \d\ds|\d+h \d\dm|unknown until the first id is done); hit rate (\d+%|--), listings \d+/);
      expect(retrying.some((m) => /; ETA (\d+s|\d+m \d\ds|\d+h \d\dm);/.test(m))).toBe(true);

      // at the end: the hit rate of this scrape, as the progress line and in the log
      const hit = `${((100 * result.ok) / (result.ok + result.gone)).toFixed(0)}%`;
      const summary = `finished: hit rate ${hit} (${result.ok} listings, ${result.gone} misses, ${result.failed} failed of ${result.idsInRange} ids)`;
      expect(final.message).toContain(summary);
      const logs = (await engine.request('jobs.logs', { id: job.id, limit: 1000 })) as JobLogEntry[];
      expect(logs.some((l) => l.level === 'info' && l.message.includes(summary))).toBe(true);
      expect(result.ok + result.gone + result.failed).toBe(80);
    } finally {
      off();
      await engine.close();
    }
  }, 120_000);
});
