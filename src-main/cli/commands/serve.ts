import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { Engine } from '../../engine/engine.ts';
import { startStudioServer } from '../../engine/api/http-server.ts';
import { demoWorkspaceDir } from '../../engine/workspace/paths.ts';
import { prepareDemo } from '../../engine/demo.ts';
import '../../engine/demo-steps.ts';
import { Workspace } from '../../engine/workspace/workspace.ts';
import { UserError } from '../../engine/workspace/errors.ts';
import { assertWorkspace, createOption, intArg, resolveWorkspace, workspaceOption } from '../common.ts';

export const RENDERER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../out/renderer');

interface ServeOpts {
  workspace?: string;
  port: number;
  host: string;
  demo?: boolean;
  allowHost: string[];
  allowPath: string[];
  readyJson?: boolean;
  create?: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the studio to a browser (the engine plus the UI over HTTP, with a per-launch access token)')
    .addOption(workspaceOption())
    .option('-p, --port <port>', 'TCP port (0 picks a free one)', intArg('--port', 0, 65535), 5757)
    .option('--host <addr>', 'address to bind; keep 127.0.0.1 and use an SSH tunnel on shared machines', '127.0.0.1')
    .option('--allow-host <name>', 'also accept this Host name (repeatable), e.g. the box name when binding 0.0.0.0', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--allow-path <dir>', 'a folder the API may read photos from besides the workspace and the folders a prediction was started on (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--demo', 'use the demo workspace, creating and filling it on first start')
    .addOption(createOption())
    .option('--ready-json', 'print one JSON line {url, token, port, workspace} when ready (for the desktop shell)')
    .action(async (opts: ServeOpts) => {
      const dir = opts.demo && opts.workspace === undefined ? demoWorkspaceDir() : resolveWorkspace(opts);
      // Created here: the demo workspace (--demo fills it), the per-user default workspace of a
      // bare `carstudio serve` (the first run), or any with --create. A workspace the user named
      // (--workspace, $CARSTUDIO_WORKSPACE) that does not exist is an error: a typo must not
      // open a new, empty studio.
      const isDefault = opts.workspace === undefined && process.env.CARSTUDIO_WORKSPACE === undefined;
      const create = opts.demo === true || opts.create === true || isDefault;
      if (!create) assertWorkspace(dir, true);
      else if (!opts.demo && !Workspace.exists(dir)) {
        process.stderr.write(`creating workspace ${dir}${isDefault && !opts.create ? ' (the default workspace; pass --workspace DIR for another)' : ''}\n`);
      }
      const engine = Engine.open(dir, { create, isDemo: opts.demo ?? false, resumeJobs: true, allowPaths: allowedPaths(opts.allowPath) });
      // e.g. opened read-only on a full disk, or the quick check skipped for a very large database
      for (const note of engine.ws.notes) process.stderr.write(`note: ${note}\n`);
      let server;
      try {
        server = await startStudioServer({ engine, host: opts.host, port: opts.port, staticDir: RENDERER_DIR, allowedHosts: opts.allowHost, token: process.env.CARSTUDIO_TOKEN || undefined });
      } catch (e) {
        await engine.close();
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EADDRINUSE') throw new UserError(`port ${opts.port} on ${opts.host} is in use; pick another with --port (or --port 0 for any free one)`);
        if (err.code === 'EADDRNOTAVAIL') throw new UserError(`cannot bind ${opts.host}: not an address of this machine`);
        throw e;
      }
      if (opts.readyJson) {
        process.stdout.write(JSON.stringify({ url: server.url, token: server.token, port: server.port, workspace: engine.ws.dir }) + '\n');
      } else {
        process.stdout.write(`CarStudio is serving workspace ${engine.ws.dir}\n`);
        process.stdout.write(`Open ${server.openUrl}\n`);
        if (opts.host !== '127.0.0.1' && opts.host !== 'localhost') {
          process.stdout.write(`(bound to ${opts.host}: anyone who can reach this port still needs the token above)\n`);
        }
        process.stdout.write('Press Ctrl-C to stop; running jobs are stopped cleanly and resume on the next start.\n');
      }
      if (opts.demo) {
        prepareDemo(engine).catch((e) => process.stderr.write(`demo workspace: ${(e as Error).message}\n`));
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (): void => {
          if (stopping) {
            process.stderr.write('forced exit\n');
            process.exit(130);
          }
          stopping = true;
          process.stderr.write('stopping: finishing in-flight work of running jobs...\n');
          void server!
            .close()
            .then(() => engine.close())
            .then(() => {
              process.off('SIGINT', stop);
              process.off('SIGTERM', stop);
              if (opts.readyJson) process.stdin.destroy();
              resolve();
            });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        // The desktop shell owns this process through a pipe: stop when it goes away.
        if (opts.readyJson) process.stdin.on('end', stop).resume();
      });
    });
}

/** The --allow-path folders, resolved; one that is not an existing folder is an error. */
function allowedPaths(dirs: string[]): string[] {
  return dirs.map((d) => {
    const dir = path.resolve(d);
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch {
      throw new UserError(`--allow-path ${dir} does not exist`);
    }
    if (!fs.statSync(real).isDirectory()) throw new UserError(`--allow-path ${dir} is not a folder`);
    return real;
  });
}
