#!/usr/bin/env -S node --lite-mode --no-expose-wasm
/**
 * lockbox-agent: `run` keeps the deployment's secrets current under $BENTOML_HOME; `once` writes
 * them and exits (init containers); `exec -- CMD` runs CMD with the env secrets and restarts or
 * signals it when they change. Settings: flags, then LOCKBOX_* env, then defaults. Logs are JSON
 * on stderr and never hold a value.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
import { constants as osConstants } from 'node:os';
import { durationHelp, parseDuration, parseHostPort, parseNatsUrls, SettingError } from '../../shared/src/settings.js';
import { parseDaemonAddresses } from './daemon-addresses.js';
import { checkNatsOptions, natsSecretFlagHelp, refuseNatsSecretFlags } from '../../shared/src/nats-options.js';
import { jsonLogOptions } from '../../shared/src/log-format.js';
import { withTimeout } from '../../shared/src/timeout.js';
import { versionLine } from '../../shared/src/version.js';
import { Agent, MountWriteError } from './agent.js';
import { AgentMetrics } from './agent-metrics.js';
import { scrape } from '../../shared/src/metrics.js';
import type { Rendered } from './render.js';

function mode(text: string, setting: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new SettingError(`${setting}: "${text}" must be an octal mode like 0400`);
  return parseInt(text, 8);
}

function group(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === text);
  if (!line) throw new SettingError(`--group: no group named "${text}"`);
  return Number(line.split(':')[2]);
}

function common(command: Command): Command {
  const env = (n: string) => `LOCKBOX_${n}`;
  return command
    .addOption(new Option('--addr <host:port,...>', 'lockboxd gRPC address(es): host:port, a comma list of replicas, a DNS name that resolves to several, or ipv4:a:p,b:p; a broken session moves to the next').env(env('ADDR')).default('127.0.0.1:7700'))
    .addOption(new Option('--token <token>', 'agent token').env(env('TOKEN')))
    .addOption(new Option('--token-file <path>', 'file holding the agent token').env(env('TOKEN_FILE')))
    .addOption(new Option('--bentoml-home <dir>', 'where secrets are written (default: $BENTOML_HOME, else ~/bentoml)').env('BENTOML_HOME'))
    .addOption(new Option('--nats-url <url,...>', 'optional: NATS notices as an extra resync trigger (changes are pushed on the session anyway); a comma list, or "advertised" for what lockboxd advertises; default none').env(env('NATS_URL')))
    .addOption(new Option('--nats-token <token>', natsSecretFlagHelp('NATS token', 'LOCKBOX_NATS_TOKEN')).env(env('NATS_TOKEN')))
    .addOption(new Option('--nats-user <user>', 'NATS user (with --nats-password)').env(env('NATS_USER')))
    .addOption(new Option('--nats-password <password>', natsSecretFlagHelp('NATS password', 'LOCKBOX_NATS_PASSWORD')).env(env('NATS_PASSWORD')))
    .addOption(new Option('--nats-creds <path>', 'NATS creds file (JWT and NKey seed)').env(env('NATS_CREDS')))
    .addOption(new Option('--nats-ca <path>', 'CA bundle for the NATS server\'s certificate: enables TLS').env(env('NATS_CA')))
    .addOption(new Option('--nats-ping-interval <duration>', 'NATS ping interval (two unanswered drop the connection); a bare number is seconds').env(env('NATS_PING_INTERVAL')).default('5s'))
    .addOption(new Option('--keepalive-time <duration>', 'gRPC keepalive: ping lockboxd after this long without traffic').env(env('KEEPALIVE_TIME')).default('5s'))
    .addOption(new Option('--keepalive-timeout <duration>', 'gRPC keepalive: a ping unanswered this long means lockboxd is dead or hung: move to the next address').env(env('KEEPALIVE_TIMEOUT')).default('5s'))
    .addOption(new Option('--resync-interval <duration>', 'full resync period (what is held is compared by version; only what differs is sent)').env(env('RESYNC_INTERVAL')).default('60s'))
    .addOption(new Option('--file-mode <octal>', 'mode of written files').env(env('FILE_MODE')).default('0400'))
    .addOption(new Option('--dir-mode <octal>', 'mode of written dirs').env(env('DIR_MODE')).default('0500'))
    .addOption(new Option('--group <name|gid>', 'group owner of written files (use with 0440/0550)').env(env('GROUP')))
    .addOption(new Option('--agent-id <id>', 'how this agent appears in rollout status (default: host/pid)').env(env('AGENT_ID')))
    .addOption(new Option('--tls-ca <path>', 'CA bundle to verify lockboxd: enables TLS').env(env('TLS_CA')))
    .addOption(new Option('--tls-cert <path>', 'client certificate for mTLS').env(env('TLS_CERT')))
    .addOption(new Option('--tls-key <path>', 'client key for mTLS').env(env('TLS_KEY')))
    .addOption(new Option('--log-level <level>', 'info, warn, error').env(env('LOG_LEVEL')).default('info'))
    .hook('preAction', (self) => refuseNatsSecretFlags(self));
}

/** `follow: false` (for `once`): no NATS, whatever --nats-url says (it is still checked); a one-shot run. */
function buildAgent(o: Record<string, string | undefined>, { onChange, follow = true, metrics }: { onChange?: (r: Rendered) => void; follow?: boolean; metrics?: AgentMetrics } = {}): Agent {
  let token = o.token;
  if (!token && o.tokenFile) {
    try {
      token = readFileSync(o.tokenFile, 'utf8').trim();
    } catch (error) {
      throw new SettingError(`--token-file: cannot read ${o.tokenFile}: ${(error as NodeJS.ErrnoException).code}`);
    }
  }
  if (!token) throw new SettingError('no token: pass --token or --token-file (or LOCKBOX_TOKEN / LOCKBOX_TOKEN_FILE)');
  const home = o.bentomlHome || join(homedir(), 'bentoml');
  if (!existsSync(home)) throw new SettingError(`--bentoml-home: ${home} does not exist`);
  if (!statSync(home).isDirectory()) throw new SettingError(`--bentoml-home: ${home} is not a directory`);
  parseDaemonAddresses(o.addr!, '--addr');
  const resyncIntervalMs = parseDuration(o.resyncInterval!, '--resync-interval');
  if (resyncIntervalMs < 100 || resyncIntervalMs > 86_400_000) throw new SettingError(`--resync-interval: "${o.resyncInterval}" must be from 100ms to 24h`);
  // Unset, "none" or "": pushes on the session only; "advertised": what lockboxd advertises.
  const given = o.natsUrl === undefined || o.natsUrl === 'advertised' ? o.natsUrl : parseNatsUrls(o.natsUrl, '--nats-url') || 'none';
  const natsUrl = !follow ? 'none' : given;
  const nats = { token: o.natsToken, user: o.natsUser, password: o.natsPassword, credsFile: o.natsCreds, caFile: o.natsCa, pingIntervalMs: parseDuration(o.natsPingInterval ?? '5s', '--nats-ping-interval') };
  checkNatsOptions(nats);
  const keepalive = { timeMs: parseDuration(o.keepaliveTime ?? '5s', '--keepalive-time'), timeoutMs: parseDuration(o.keepaliveTimeout ?? '5s', '--keepalive-timeout') };
  for (const [ms, setting] of [[keepalive.timeMs, '--keepalive-time'], [keepalive.timeoutMs, '--keepalive-timeout'], [nats.pingIntervalMs, '--nats-ping-interval']] as const)
    if (ms < 1000 || ms > 3_600_000) throw new SettingError(`${setting}: must be from 1s to 1h`);
  const log = pino(jsonLogOptions('lockbox-agent', o.logLevel ?? 'info'), pino.destination({ dest: 1, sync: true }));
  return new Agent({
    client: { addr: o.addr!, token, tlsCa: o.tlsCa, tlsCert: o.tlsCert, tlsKey: o.tlsKey, timeoutMs: 10_000, keepalive },
    bentomlHome: home,
    natsUrl,
    nats,
    resyncIntervalMs,
    modes: { fileMode: mode(o.fileMode!, '--file-mode'), dirMode: mode(o.dirMode!, '--dir-mode'), gid: group(o.group) },
    agentId: o.agentId,
    oneShot: !follow, // `once`: a one-shot run in rollout status
    log,
    onChange,
    metrics,
  });
}

/** Resolves once listening; a port in use (or any listen error) rejects, naming the setting. */
function serveHealth(addr: string, agent: Agent, metrics: AgentMetrics): Promise<Server> {
  const { host, port } = parseHostPort(addr, '--health-addr');
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      void scrape(metrics.registry).then(({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body));
      return;
    }
    const ok = req.url === '/healthz' || (req.url === '/readyz' && agent.ready);
    res.writeHead(req.url === '/healthz' || req.url === '/readyz' ? (ok ? 200 : 503) : 404, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok\n' : 'not ready\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`--health-addr: cannot listen on ${addr}: ${error.code ?? error.message}`)));
    server.listen(port, host, () => resolve(server));
  });
}

/** Retries the first sync until it works or `ms` passes. */
async function firstSync(agent: Agent, ms: number, start: (a: Agent) => Promise<void>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await withTimeout(start(agent), Math.max(1, deadline - Date.now()), 'timed out');
    } catch (error) {
      const detail = (error as { details?: string }).details ?? (error as Error).message;
      if (Date.now() >= deadline && error instanceof MountWriteError) throw new Error(`could not write the secrets within ${ms / 1000}s: ${detail}`);
      if (Date.now() >= deadline || (error as { code?: number }).code === 16 || (error as { code?: number }).code === 7)
        throw new Error(`could not get the secrets from lockboxd within ${ms / 1000}s: ${detail}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('lockbox-agent')
    .description('lockbox sidecar: writes a deployment\'s secrets under $BENTOML_HOME and keeps them current')
    .addHelpText('after', `\n${durationHelp}\n`)
    .version(versionLine('lockbox-agent'), '-V, --version', 'print the version and exit')
    .exitOverride();
  let exitCode = 0;

  common(program.command('run'))
    .description('write the secrets, then follow every change until stopped')
    .addOption(new Option('--health-addr <host:port>', 'serve /healthz, /readyz and /metrics (Prometheus)').env('LOCKBOX_HEALTH_ADDR'))
    .action(async (o) => {
      const metrics = o.healthAddr ? new AgentMetrics() : undefined;
      const agent = buildAgent(o, { metrics });
      const health = o.healthAddr ? await serveHealth(o.healthAddr, agent, metrics!) : undefined;
      const stopped = new Promise<void>((resolve) => {
        for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void agent.stop().then(resolve));
      });
      await firstSync(agent, 30_000, (a) => a.start());
      await stopped;
      health?.close();
      health?.closeAllConnections();
    });

  common(program.command('once'))
    .description('write the secrets and exit 0 (init containers); exit 1 if lockboxd cannot be reached, or the secrets written, in time')
    .addOption(new Option('--timeout <duration>', 'how long to keep trying').default('30s'))
    .action(async (o) => {
      const agent = buildAgent(o, { follow: false });
      try {
        await firstSync(agent, parseDuration(o.timeout, '--timeout'), (a) => a.syncOnce());
      } finally {
        await agent.stop();
      }
    });

  common(program.command('exec'))
    .description('run a command with the env secrets in its environment; restart or signal it when they change')
    .addOption(new Option('--on-change <action>', 'restart | signal:NAME | none').default('restart'))
    .addOption(new Option('--grace <duration>', 'after SIGTERM (a restart, or lockbox-agent told to stop), how long before SIGKILL').default('10s'))
    .argument('<command...>', 'the command (after --)')
    .action(async (command: string[], o) => {
      const onChange = String(o.onChange);
      const signalName = onChange.startsWith('signal:') ? onChange.slice(7) : undefined;
      if (!['restart', 'none'].includes(onChange) && !(signalName && signalName in osConstants.signals))
        throw new SettingError(`--on-change: "${onChange}" must be restart, none or signal:NAME (e.g. signal:SIGHUP)`);
      const grace = parseDuration(o.grace, '--grace');
      let child: ChildProcess | undefined;
      // A restart in flight: changes that arrive meanwhile join it (the new child gets the latest env).
      let restarting: Promise<void> | undefined;
      // SIGTERM or SIGINT was forwarded: the child's exit ends the agent, even in a restart.
      let stopping = false;
      let env: Record<string, string> = {};
      const launch = () => {
        const started = spawn(command[0], command.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } });
        child = started;
        started.once('exit', (code, signal) => {
          if (restarting && !stopping) return;
          exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 1) : 1);
          void agent.stop().then(() => process.exit(exitCode));
        });
        // The command could not be started (no 'exit' follows): one line, and a shell's codes.
        started.on('error', (error: NodeJS.ErrnoException) => {
          if (!error.syscall?.startsWith('spawn')) return;
          process.stderr.write(`lockbox-agent: cannot run ${JSON.stringify(command[0])}: ${error.code === 'ENOENT' ? 'no such command' : error.message}\n`);
          exitCode = error.code === 'ENOENT' ? 127 : 126;
          void agent.stop().then(() => process.exit(exitCode));
        });
      };
      const restart = () => {
        restarting ??= (async () => {
          const old = child;
          if (old && old.exitCode === null && old.signalCode === null) {
            const exited = new Promise((r) => old.once('exit', r));
            old.kill('SIGTERM');
            const timer = setTimeout(() => old.kill('SIGKILL'), grace);
            await exited;
            clearTimeout(timer);
          }
          restarting = undefined;
          if (!stopping) launch();
        })();
      };
      const agent = buildAgent(o, { onChange: (rendered) => {
        const changed = JSON.stringify(rendered.env) !== JSON.stringify(env);
        env = rendered.env;
        if (!child || !changed || stopping) return;
        if (onChange === 'restart') restart();
        else if (signalName) child.kill(signalName as NodeJS.Signals);
      } });
      await firstSync(agent, 30_000, (a) => a.start());
      env = agent.lastRendered?.env ?? {};
      launch();
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
        process.on(signal, () => {
          child?.kill(signal);
          if (signal === 'SIGHUP' || stopping) return;
          stopping = true;
          const last = child;
          setTimeout(() => last?.kill('SIGKILL'), grace).unref(); // a child that ignores it gets the grace period, as in a restart
        });
      await new Promise(() => {}); // the child's exit ends the process
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    process.stderr.write(`lockbox-agent: ${(error as Error).message}\n`);
    return error instanceof SettingError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
