/** Runs the `lockbox` CLI in-process (runCli, as the installed command runs it) and captures what it prints. */
import { runCli } from '../../cli/src/cli.js';

export async function runLockbox(args: string[], opts: { cwd?: string; stdin?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    readStdin: () => Buffer.from(opts.stdin ?? ''),
    cwd: opts.cwd ?? process.cwd(),
  });
  return { code, stdout, stderr };
}
