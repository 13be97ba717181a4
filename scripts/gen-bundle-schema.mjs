// Writes docs/bundle.schema.json from the zod schema in app/bundle/bundle.ts (z.toJSONSchema).
// app/bundle/bundle.test.ts ('the JSON Schema') fails when the committed file differs: run `node scripts/gen-bundle-schema.mjs`.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { format, resolveConfig } from 'prettier';

mkdirSync('.tmp', { recursive: true });
const outfile = resolve('.tmp/gen-bundle-schema.cjs');
await build({
  entryPoints: ['app/bundle/bundle.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
});
const { bundleJsonSchema } = createRequire(import.meta.url)(outfile);
const file = resolve('docs/bundle.schema.json');
const options = { ...(await resolveConfig(file)), filepath: file };
const text = await format(JSON.stringify(bundleJsonSchema()), options);
writeFileSync(file, text);
console.log('wrote docs/bundle.schema.json');
