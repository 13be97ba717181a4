// `npm run bench [name...]`: bundles each bench/<name>.ts with esbuild and runs it with plain Node, one at a
// time, so figures are not disturbed by a parallel runner. Each bench prints its own figures.
import { build } from 'esbuild';
import { readdirSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const wanted = process.argv.slice(2);
const all = readdirSync('bench')
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
// Groups a name stands for: `npm run bench snp` runs the SNP digest and report-verification benches.
const groups = { snp: ['snp-digest', 'snp-verify'] };
const names = (wanted.length ? wanted : all).flatMap((n) => groups[n] ?? [n]);
mkdirSync('.tmp/bench', { recursive: true });
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`no bench named ${name}; have: ${all.join(', ')}`);
    process.exit(2);
  }
  const outfile = `.tmp/bench/${name}.cjs`;
  await build({
    entryPoints: [`bench/${name}.ts`],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['keytar', 'electron', 'pg-native'],
    logLevel: 'warning',
  });
  console.log(`\n== bench ${name} ==`);
  const r = spawnSync(process.execPath, [outfile], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
