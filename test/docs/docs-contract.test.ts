/**
 * The prose contract matches the code: every error code the listener can answer with, and every route
 * of the served OpenAPI document, is named in docs/api.md (bundle routes link to docs/bundles.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../app/contract/openapi';
import { API_ERROR_CODES, ERROR_STATUS } from '../../app/contract/rest';

const read = (f: string) => readFileSync(join(process.cwd(), 'docs', f), 'utf8');
const api = read('api.md');

describe('docs/api.md and the code agree', () => {
  it('names every error code with its status', () => {
    const missing = API_ERROR_CODES.filter((c) => !api.includes(`| \`${c}\` | ${ERROR_STATUS[c]} |`));
    expect(missing).toEqual([]);
  });

  it('names every route of /v1/openapi.json', () => {
    const paths = Object.keys(buildOpenApiDocument('test').paths ?? {});
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((p) => !api.includes(p))).toEqual([]);
    expect(api).toContain('bundles.md');
  });
});
