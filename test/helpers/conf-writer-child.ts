/**
 * Child for the kv-backend crash test: rewrites one conf key with a large value in a tight loop, each
 * value self-checking (every element carries the generation), until it is killed. Env: DATA_DIR.
 */
import { createConfBackend } from '../../server/services/kv-backend';

const backend = createConfBackend<{ blob: { gen: number; items: string[] } }>({
  cwd: process.env.DATA_DIR ?? '.',
  configName: 'blob',
  defaults: { blob: { gen: 0, items: [] } },
});
let gen = backend.get('blob').gen + 1;
process.stdout.write('ready\n');
for (;;) {
  // ~256 KiB per write: the file write takes long enough for kills to land inside it.
  backend.set('blob', { gen, items: Array.from({ length: 4096 }, (_, i) => `${gen}:${i}`.padEnd(60, '.')) });
  gen++;
}
