/**
 * Reads the Dockerfile into stages and names what is wrong with it, as a list of problems, so a
 * test can assert the real file has none and that each rule catches a file that breaks it.
 * Rules (issue 13 item 8):
 * 1. the stages are toolchain, build, prod-deps, agent, lockboxd, and lockboxd is the last (the default target);
 * 2. the Node base (ARG NODE_IMAGE) is pinned by digest; the runtime stages (agent, lockboxd) start from it, never from a stage with compilers, and install nothing;
 * 3. each runtime stage runs as a non-root USER set before its ENTRYPOINT;
 * 4. lockboxd has a HEALTHCHECK: `node -e` against http://127.0.0.1:7701/healthz, no curl or wget;
 * 5. no stage COPYs test/, bench/ or scripts/, and no runtime stage copies a whole tree they could be in (/app, /app/dist);
 * 6. lockboxd's node_modules come from prod-deps, which installs without dev dependencies and drops better-sqlite3's sources and object files;
 * 7. the agent stage copies only allowed paths.
 */
export interface Instruction { cmd: string; args: string }
export interface Stage { name: string; base: string; body: Instruction[] }

export function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, cmd, rest] = /^(\S+)\s*(.*)$/.exec(line)!;
    const ins = { cmd: cmd.toUpperCase(), args: rest };
    if (ins.cmd === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      stages.push({ base: m?.[1] ?? rest, name: m?.[2] ?? '', body: [] });
    } else if (stages.length === 0) args.push(ins);
    else stages[stages.length - 1].body.push(ins);
  }
  return { args, stages };
}

/** A COPY's sources and whether it comes from another stage (and which). */
export function copies(stage: Stage): Array<{ from?: string; sources: string[] }> {
  return stage.body.filter((i) => i.cmd === 'COPY').map((i) => {
    const words = i.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1) };
  });
}

export function execForm(args: string): string[] | undefined {
  try {
    const v = JSON.parse(args) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

export const runtimeStages = ['agent', 'lockboxd'];

export function dockerfileProblems(text: string, agentAllowed: string[]): string[] {
  const problems: string[] = [];
  const { args, stages } = parseDockerfile(text);
  const byName = new Map(stages.map((s) => [s.name, s]));
  // (1)
  const names = stages.map((s) => s.name).join(',');
  if (names !== 'toolchain,build,prod-deps,agent,lockboxd') problems.push(`stages are ${names}`);
  const nodeImage = args.find((a) => a.cmd === 'ARG' && a.args.startsWith('NODE_IMAGE='));
  if (!nodeImage || !/^NODE_IMAGE=node:20-bookworm-slim@sha256:[0-9a-f]{64}$/.test(nodeImage.args)) problems.push('no ARG NODE_IMAGE=node:20-bookworm-slim@sha256:… (pinned by digest) before the first FROM');
  for (const name of runtimeStages) {
    const stage = byName.get(name);
    if (!stage) continue;
    // (2)
    if (stage.base !== '${NODE_IMAGE}') problems.push(`${name}: FROM ${stage.base}, not the Node base`);
    if (stage.body.some((i) => i.cmd === 'RUN' && /apt-get install|npm (ci|install|rebuild)/.test(i.args))) problems.push(`${name}: installs in the runtime stage`);
    // (3)
    const users = stage.body.map((i, n) => ({ i, n })).filter(({ i }) => i.cmd === 'USER');
    const entry = stage.body.findIndex((i) => i.cmd === 'ENTRYPOINT');
    const user = users.at(-1);
    if (!user || /^(root|0)(:|$)/.test(user.i.args)) problems.push(`${name}: runs as root`);
    else if (entry >= 0 && user.n > entry) problems.push(`${name}: USER after ENTRYPOINT`);
    if (entry < 0) problems.push(`${name}: no ENTRYPOINT`);
    // (5)
    for (const c of copies(stage)) {
      for (const src of c.sources) if (['/app', '/app/', '/app/dist', '/app/dist/', '.', './'].includes(src)) problems.push(`${name}: copies the whole of ${src}`);
    }
  }
  for (const stage of stages) {
    for (const c of copies(stage)) {
      for (const src of c.sources) if (/^(\.\/|\/app\/|\/app\/dist\/)?(test|bench|scripts)(\/|$)/.test(src)) problems.push(`${stage.name}: copies ${src}`);
    }
  }
  // (4)
  const daemon = byName.get('lockboxd');
  const health = daemon?.body.find((i) => i.cmd === 'HEALTHCHECK');
  const cmd = health && execForm(health.args.replace(/^(--\S+\s+)*CMD\s+/, ''));
  if (!health) problems.push('lockboxd: no HEALTHCHECK');
  else if (!cmd || cmd[0] !== 'node' || cmd[1] !== '-e' || !cmd[2]?.includes("'http://127.0.0.1:7701/healthz'")) problems.push('lockboxd: the HEALTHCHECK is not `node -e` on http://127.0.0.1:7701/healthz');
  if (health && /\b(curl|wget)\b/.test(health.args)) problems.push('lockboxd: the HEALTHCHECK uses curl or wget');
  // (6)
  if (daemon) {
    const modules = copies(daemon).filter((c) => c.sources.some((s) => s.includes('node_modules')));
    if (modules.length === 0 || modules.some((c) => c.from !== 'prod-deps')) problems.push('lockboxd: node_modules not from prod-deps');
  }
  const prod = byName.get('prod-deps')?.body.filter((i) => i.cmd === 'RUN').map((i) => i.args).join(' ') ?? '';
  if (!/npm ci --omit=dev/.test(prod)) problems.push('prod-deps: installs dev dependencies');
  if (!/cd node_modules\/better-sqlite3\b.*rm -rf[^&]*\bsrc\b[^&]*\bdeps\b/.test(prod) || !/rm -rf[^&]*\bbuild\b/.test(prod)) problems.push("prod-deps: better-sqlite3's sources and build leftovers stay");
  // (7)
  const agent = byName.get('agent');
  for (const c of agent ? copies(agent) : []) {
    for (const src of c.sources) if (!c.from || !agentAllowed.includes(src)) problems.push(`agent: copies ${c.from ?? 'context'}:${src}, not an allowed path`);
  }
  return problems;
}
