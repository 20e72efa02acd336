import type { Command } from 'commander';
import { Workspace } from '../../engine/workspace/workspace.ts';
import { resolveWorkspace, workspaceOption } from '../common.ts';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create an empty workspace (a folder with studio.db and the image store)')
    .addOption(workspaceOption())
    .action((opts: { workspace?: string }) => {
      const dir = resolveWorkspace(opts);
      const existed = Workspace.exists(dir);
      const ws = Workspace.open(dir, { create: true });
      ws.close();
      process.stdout.write(`${existed ? 'workspace already exists' : 'created workspace'}: ${ws.dir}\n`);
    });
}
