/**
 * Every section a source comment cites (`protocol doc §N`, `docs/architecture.md §N`, also lists such as
 * `§N, §M`) exists as a heading in docs/protocol.md or docs/architecture.md, and no source file cites
 * the shared style notes, which are not part of this repository.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

type Doc = 'protocol' | 'architecture';

interface Citation {
  doc: Doc;
  section: string;
  line: number;
}

/** The phrases that name each document; longer alternatives first so the whole phrase is consumed. */
const CITATION = new RegExp(
  '(docs/protocol\\.md|protocol\\.md|protocol document|protocol notes|protocol doc|docs/architecture\\.md|architecture\\.md)' +
    '\\s*§\\s*(\\d+(?:\\.\\d+)*)((?:\\s*(?:,|and|&)\\s*§?\\s*\\d+(?:\\.\\d+)*)*)',
  'g',
);
const LIST_ITEM = /\d+(?:\.\d+)*/g;

/** The shared style notes live outside the repository; code must cite docs/architecture.md instead. */
const FOREIGN_DOC = /architecture-and-style\.md/;

/** All citations in `text`, with 1-based line numbers. */
function findCitations(text: string): Citation[] {
  const out: Citation[] = [];
  text.split('\n').forEach((lineText, i) => {
    for (const m of lineText.matchAll(CITATION)) {
      const doc: Doc = m[1]!.includes('architecture') ? 'architecture' : 'protocol';
      const sections = [m[2]!, ...(m[3]!.match(LIST_ITEM) ?? [])];
      for (const section of sections) out.push({ doc, section, line: i + 1 });
    }
  });
  return out;
}

/** Whether `markdown` has a heading for section `n` (`## 6. ...`, `### 6.1 ...`). */
function hasSection(markdown: string, n: string): boolean {
  const escaped = n.replace(/\./g, '\\.');
  return new RegExp(`^#+ *${escaped}[. ]`, 'm').test(markdown);
}

/** Problems in one file's text: citations of missing sections and citations of the foreign doc. */
function checkText(file: string, text: string, docs: Record<Doc, string>): string[] {
  const problems: string[] = [];
  for (const c of findCitations(text)) {
    if (!hasSection(docs[c.doc], c.section)) {
      problems.push(
        `${file}:${c.line}: cites section ${c.section} of docs/${c.doc}.md, which has no such heading`,
      );
    }
  }
  text.split('\n').forEach((lineText, i) => {
    if (FOREIGN_DOC.test(lineText)) {
      problems.push(`${file}:${i + 1}: cites the shared style notes, which are not in the repository`);
    }
  });
  return problems;
}

function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0');
  return listed.filter(
    (f) =>
      /\.(ts|tsx|mjs|py|sh)$/.test(f) && !f.startsWith('docs/') && !f.split('/').includes('node_modules'),
  );
}

const readDoc = (name: string) => readFileSync(join(root, 'docs', name), 'utf8');

describe('section citations in source comments', () => {
  // Assembled from parts so this file does not cite anything itself.
  const P = 'protocol ' + 'doc';
  const A = 'architecture' + '.md';
  const fakeDocs: Record<Doc, string> = {
    protocol: '# Title\n## 1. One\n## 6. Six\n### 6.1 Footer\n## 10. Ten\n',
    architecture: '## 1. Processes\n## 2. Folders\n',
  };

  it('the matcher finds single citations, lists and every phrase form', () => {
    const found = findCitations(
      `// ${P} §6.1 and the ${P}ument §10\n/* see ${P} §1, §6, §6.1 */\n// docs/${A} §2; protocol notes §1\n`,
    );
    expect(found.map((c) => `${c.doc}:${c.section}@${c.line}`)).toEqual([
      'protocol:6.1@1',
      'protocol:10@1',
      'protocol:1@2',
      'protocol:6@2',
      'protocol:6.1@2',
      'architecture:2@3',
      'protocol:1@3',
    ]);
  });

  it('the heading check accepts "N." and "N " headings only for the exact number', () => {
    expect(hasSection(fakeDocs.protocol, '6.1')).toBe(true);
    expect(hasSection(fakeDocs.protocol, '10')).toBe(true);
    expect(hasSection(fakeDocs.protocol, '6.2')).toBe(false);
    expect(hasSection(fakeDocs.protocol, '0')).toBe(false);
    expect(hasSection('text 6. not a heading', '6')).toBe(false);
  });

  it('fails on a synthetic citation of a missing section and of the shared notes', () => {
    const text =
      `ok: ${P} §6.1\n * bad: ${P} §6.3 and §99\n// ${A} §3\n// docs/architecture-and-` + 'style.md §2\n';
    expect(checkText('x.ts', text, fakeDocs)).toEqual([
      'x.ts:2: cites section 6.3 of docs/protocol.md, which has no such heading',
      'x.ts:2: cites section 99 of docs/protocol.md, which has no such heading',
      'x.ts:3: cites section 3 of docs/architecture.md, which has no such heading',
      'x.ts:4: cites the shared style notes, which are not in the repository',
    ]);
  });

  it('every citation in a tracked source file lands on a heading', () => {
    const docs: Record<Doc, string> = {
      protocol: readDoc('protocol.md'),
      architecture: readDoc('architecture.md'),
    };
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(50);
    let cited = 0;
    const problems: string[] = [];
    for (const f of files) {
      const text = readFileSync(join(root, f), 'utf8');
      cited += findCitations(text).length;
      problems.push(...checkText(f, text, docs));
    }
    expect(problems).toEqual([]);
    // The scan sees the existing citations (a broken matcher would pass vacuously).
    expect(cited).toBeGreaterThan(20);
  });
});
