/** Bundles a small TypeScript entry into .tmp/<name>.cjs for tests that run it as a child node process. */
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Returns the path of the bundle (keytar stays external: it is a native addon loaded from node_modules). */
export async function bundleChild(entry: string, name: string): Promise<string> {
  const outDir = join(process.cwd(), '.tmp');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${name}-${process.pid}.cjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['keytar', 'electron'],
    logLevel: 'error',
  });
  return outfile;
}
