import { Option, type Command } from 'commander';
import { findResumable, intArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';
import { UserError } from '../../engine/workspace/errors.ts';
import { DEFAULT_MAX_DISTANCE } from '../../engine/dedup/near-index.ts';
import { acceptAll, dedupSummary, keepBest, setDecision, setOverride } from '../../engine/dedup/summary.ts';
import type { DedupParams } from '../../engine/dedup/dedup-kind.ts';

export function registerDedup(program: Command): void {
  const cmd = program
    .command('dedup')
    .description('hash stored images (the backlog), group exact or near duplicates and exclude them from training by a policy; run again to resume')
    .addOption(workspaceOption())
    .addOption(new Option('--method <method>', 'exact: the original hash; near: 64-bit pHash within --max-distance, checked by colour').choices(['exact', 'near']).default('near'))
    .option('--max-distance <d>', `pHash Hamming distance for --method near (0-32)`, intArg('--max-distance', 0, 32), DEFAULT_MAX_DISTANCE)
    .addOption(
      new Option('--policy <policy>', 'default: exclude groups that span listings, keep one copy within a listing; original: drop every image whose exact hash repeats')
        .choices(['default', 'original'])
        .default('default'),
    )
    .option('--json', 'print the result as JSON')
    .action(async (opts: { workspace?: string; method: 'exact' | 'near'; maxDistance: number; policy: 'default' | 'original'; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const params: DedupParams = { method: opts.method, maxDistance: opts.maxDistance, policy: opts.policy };
        const prev = findResumable(engine, 'dedup', (p) => JSON.stringify(p) === JSON.stringify(params));
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('dedup', params);
        const { code, job: final } = await runForeground(engine, job);
        if (opts.json) printJson({ ...(final.result as object), state: final.state, summary: dedupSummary(engine.ws.db) });
        else if (final.state === 'done') {
          const r = final.result as { hashedThisRun: number; errors: number; groups: number; imagesInGroups: number; excluded: number };
          const s = dedupSummary(engine.ws.db);
          process.stdout.write(
            `hashed ${r.hashedThisRun} images this run (${s.hashed} in all, ${r.errors} unreadable); ${r.groups} ${opts.method} groups holding ${r.imagesInGroups} images; ` +
              `${r.excluded} excluded from training (${(100 * s.excludedShare).toFixed(1)}% of ${s.stored})\n`,
          );
        }
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });

  cmd
    .command('override')
    .description('keep or drop a whole duplicate group; the choice survives re-runs')
    .addOption(workspaceOption())
    .requiredOption('--group <id>', 'group id (as listed by the API / UI; or its key with --key)', intArg('--group', 1))
    .option('--keep', 'keep every image of the group')
    .option('--drop', 'exclude every image of the group')
    .option('--clear', 'remove the override (back to the policy)')
    .option('--json', 'print the group as JSON')
    .action((opts: { workspace?: string; group: number; keep?: boolean; drop?: boolean; clear?: boolean; json?: boolean }, sub: Command) => {
      const { json, action, workspace } = keepDropChoice(opts, sub);
      const engine = openEngine({ workspace });
      try {
        const g = setOverride(engine.ws.db, { groupId: opts.group, action });
        if (json) printJson(g);
        else process.stdout.write(`group ${g.id} (${g.size} images, ${g.listings} listings): ${g.override ?? 'policy'}; ${g.members.filter((m) => m.excluded).length} excluded\n`);
      } finally {
        void engine.close();
      }
    });

  cmd
    .command('decide')
    .description('keep or drop one photo of a duplicate group; the choice survives re-runs while the photo stays grouped')
    .addOption(workspaceOption())
    .requiredOption('--image <id>', 'image id (as the groups list it)', intArg('--image', 1))
    .option('--keep', 'keep the photo for training')
    .option('--drop', 'exclude the photo from training')
    .option('--clear', 'remove the decision (back to the group override or the policy)')
    .option('--json', 'print the group as JSON')
    .action((opts: { workspace?: string; image: number; keep?: boolean; drop?: boolean; clear?: boolean; json?: boolean }, sub: Command) => {
      const { json, action, workspace } = keepDropChoice(opts, sub);
      const engine = openEngine({ workspace });
      try {
        const g = setDecision(engine.ws.db, { imageId: opts.image, action });
        if (json) printJson(g);
        else {
          const m = g.members.find((x) => x.imageId === opts.image);
          process.stdout.write(`image ${opts.image} in group ${g.id}: ${m?.excluded ? 'excluded' : 'kept'}; ${g.members.filter((x) => x.excluded).length} of ${g.size} excluded\n`);
        }
      } finally {
        void engine.close();
      }
    });

  cmd
    .command('keep-best')
    .description('keep the best copy (largest, then most bytes) of a group and drop the others; --all: every group you have not decided on')
    .addOption(workspaceOption())
    .option('--group <id>', 'group id', intArg('--group', 1))
    .option('--all', 'every group without a keep/drop decision of yours')
    .option('--json', 'print the result as JSON')
    .action((opts: { workspace?: string; group?: number; all?: boolean; json?: boolean }, sub: Command) => {
      const parent = sub.parent?.opts() as { workspace?: string; json?: boolean } | undefined;
      // the parent command has --workspace and --json of its own, which commander gives it
      const json = opts.json ?? parent?.json;
      if ((opts.group === undefined) === !opts.all) throw new UserError('give either --group <id> or --all');
      const engine = openEngine({ workspace: opts.workspace ?? parent?.workspace });
      try {
        if (opts.all) {
          const r = acceptAll(engine.ws.db);
          if (json) printJson(r);
          else process.stdout.write(`kept the best copy in ${r.groups} groups; ${r.excluded} images excluded from training\n`);
        } else {
          const g = keepBest(engine.ws.db, { groupId: opts.group! });
          if (json) printJson(g);
          else process.stdout.write(`group ${g.id}: kept image ${g.representative}, dropped ${g.members.filter((x) => x.excluded).length} of ${g.size}\n`);
        }
      } finally {
        void engine.close();
      }
    });
}

/**
 * The one of --keep, --drop, --clear a keep/drop subcommand was given (clear = null), with its
 * --json and --workspace: the parent command has those options too, and commander gives them to it.
 */
function keepDropChoice(
  opts: { workspace?: string; keep?: boolean; drop?: boolean; clear?: boolean; json?: boolean },
  sub: Command,
): { json: boolean | undefined; action: 'keep' | 'drop' | null; workspace: string | undefined } {
  const parent = sub.parent?.opts() as { workspace?: string; json?: boolean } | undefined;
  const chosen = [opts.keep, opts.drop, opts.clear].filter(Boolean).length;
  if (chosen !== 1) throw new UserError('give exactly one of --keep, --drop or --clear');
  return { json: opts.json ?? parent?.json, action: opts.keep ? 'keep' : opts.drop ? 'drop' : null, workspace: opts.workspace ?? parent?.workspace };
}
