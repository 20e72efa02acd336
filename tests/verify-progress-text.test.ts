import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { JobInfo } from '../src-main/engine/api/contract/index.ts';
import { seedStoredImages, tmpWorkspace } from './helpers/workspace.ts';
import { runCli } from './helpers/processes.ts';

/** Words of the database's own machinery that a user should not have to read in a progress line. */
const JARGON = /pragma|integrity_check|quick_check|sqlite|\bselect\b|\bupdate\b|\bwal\b/i;

describe('the verify job says what it does in the user\'s words', () => {
  it('checks the database for damage, then the photos, and ends with what it found', async () => {
    const ws = tmpWorkspace();
    const keys = await seedStoredImages(ws, 30);
    fs.rmSync(ws.store.pathFor(keys[4]!));
    const dir = ws.dir;
    ws.close();
    const engine = Engine.open(dir);
    try {
      const updates: JobInfo[] = [];
      engine.on((name, data) => name === 'job.updated' && updates.push(data as JobInfo));
      const job = engine.jobs.start('verify-store', { repair: false });
      const final = await engine.jobs.wait(job.id);
      expect(final.state).toBe('done');
      const shown = updates.filter((u) => u.id === job.id && u.message).map((u) => `${u.step}: ${u.message}`);
      // the first thing it says is the database check, in plain words
      expect(shown[0]).toBe('integrity: checking the database for damage');
      expect(final.message).toBe('no damage found in the database; 30 photos checked, 1 broken');
      for (const s of [...shown, final.message]) expect(s).not.toMatch(JARGON);
    } finally {
      await engine.close();
    }
  });

  it("describes the verify command without the database's jargon", async () => {
    const r = await runCli(['verify', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('check the database for damage');
    expect(r.stdout).not.toMatch(JARGON);
  });
});
