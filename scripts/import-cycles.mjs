#!/usr/bin/env node
// Import cycles between the TypeScript modules of packages/*/src: prints each cycle
// and exits 1 if there is one. Type-only imports count too (they are erased at run
// time, but a loop of them is still two modules that cannot be understood apart);
// a cycle is marked "(at run time)" when every import in it is a value import. Uses the TypeScript parser the build already
// has, so the check needs nothing more from npm and takes a second.
//
//   node scripts/import-cycles.mjs [root ...]     (default: packages/*/src)
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const roots = process.argv.slice(2).length > 0
  ? process.argv.slice(2).map((r) => path.resolve(r))
  : fs.readdirSync(path.join(repo, 'packages')).map((p) => path.join(repo, 'packages', p, 'src')).filter((d) => fs.existsSync(d));

function* tsFiles(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) yield p;
  }
}

/** Relative imports of one file: target file -> true when every import of it is type-only. */
function importsOf(file) {
  const src = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  const out = new Map();
  const add = (spec, typeOnly) => {
    if (!spec.startsWith('.')) return; // packages (@imapproxy/shared is built separately)
    const base = path.resolve(path.dirname(file), spec);
    const target = [base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')].find((c) => fs.existsSync(c));
    if (target) out.set(target, (out.get(target) ?? true) && typeOnly);
  };
  for (const st of src.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const clause = st.importClause;
      const typeOnly = !!clause && (clause.isTypeOnly
        || (!clause.name && !!clause.namedBindings && ts.isNamedImports(clause.namedBindings)
          && clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(st.moduleSpecifier.text, typeOnly);
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      add(st.moduleSpecifier.text, st.isTypeOnly);
    }
  }
  return out;
}

const graph = new Map();
for (const root of roots) for (const f of tsFiles(root)) if (!/\.test\.ts$/.test(f)) graph.set(f, importsOf(f));

// Tarjan's strongly connected components: every component of more than one module
// (or a module importing itself) holds at least one cycle; show one cycle through it.
let index = 0;
const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], components = [];
function strong(v) {
  idx.set(v, index); low.set(v, index); index++;
  stack.push(v); onStack.add(v);
  for (const w of graph.get(v)?.keys() ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do { w = stack.pop(); onStack.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1 || graph.get(v)?.has(v)) components.push(comp);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) strong(v);

/** A shortest cycle through `start` inside its component (breadth-first). */
function cycleThrough(start, comp) {
  const inComp = new Set(comp);
  const prev = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v).keys()) {
      if (w === start) {
        const path_ = [v];
        for (let p = prev.get(v); p !== null; p = prev.get(p)) path_.unshift(p);
        return path_;
      }
      if (inComp.has(w) && !prev.has(w)) { prev.set(w, v); queue.push(w); }
    }
  }
  return [start];
}

const rel = (f) => path.relative(repo, f);
for (const comp of components) {
  comp.sort();
  const cycle = cycleThrough(comp[0], comp);
  const viaTypes = cycle.some((f, i) => graph.get(f).get(cycle[(i + 1) % cycle.length]));
  console.log(`import cycle${viaTypes ? ' (through type-only imports)' : ' (at run time)'}: ${[...cycle, cycle[0]].map(rel).join(' -> ')}`
    + (comp.length > cycle.length ? `  [${comp.length} modules in this knot: ${comp.map(rel).join(', ')}]` : ''));
}
console.log(`${graph.size} modules, ${components.length} import cycle(s)`);
process.exitCode = components.length > 0 ? 1 : 0;
