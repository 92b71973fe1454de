#!/usr/bin/env node
// Which shim/src file uses which, and whether they form a cycle: `node hack/shim-deps.js`
// after `make -C shim`. A file uses another when its object file needs a symbol (a
// function or a global) the other's defines (nm), or when it #includes it. Prints each
// file's uses with the symbols behind them (-v), then every cycle (a strongly connected
// group of files); exits 1 when there is one.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const SHIM = path.resolve(__dirname, '..', 'shim');
const SRC = path.join(SHIM, 'src');
const BUILD = path.join(SHIM, 'build');
const verbose = process.argv.includes('-v');

const sources = fs.readdirSync(SRC).filter((f) => /\.[ch]$/.test(f)).sort();
const uses = new Map(sources.map((f) => [f, new Map()])); // file -> used file -> symbols
const use = (from, to, what) => {
  if (from === to) return;
  const m = uses.get(from);
  if (!m.has(to)) m.set(to, new Set());
  m.get(to).add(what);
};

for (const f of sources) {
  for (const line of fs.readFileSync(path.join(SRC, f), 'utf8').split('\n')) {
    const m = /^\s*#\s*include\s+"([^"]+)"/.exec(line);
    if (m && uses.has(m[1])) use(f, m[1], '#include');
  }
}

const nm = (args, obj) => execFileSync('nm', [...args, obj], { encoding: 'utf8' }).split('\n').filter(Boolean);
const definer = new Map(); // symbol -> .c file
const objects = sources.filter((f) => f.endsWith('.c')).map((f) => [f, path.join(BUILD, f.replace(/\.c$/, '.o'))]);
for (const [f, obj] of objects) {
  if (!fs.existsSync(obj)) {
    console.error(`${obj} is missing: run make -C shim first`);
    process.exit(2);
  }
  for (const line of nm(['--defined-only', '-g'], obj)) definer.set(line.split(/\s+/).pop(), f);
}
for (const [f, obj] of objects) {
  for (const line of nm(['-u'], obj)) {
    const sym = line.trim().split(/\s+/).pop();
    if (definer.has(sym)) use(f, definer.get(sym), sym);
  }
}

// Tarjan's strongly connected components.
const index = new Map(), low = new Map(), onStack = new Set(), stack = [], groups = [];
let next = 0;
const visit = (v) => {
  index.set(v, next);
  low.set(v, next++);
  stack.push(v);
  onStack.add(v);
  for (const w of uses.get(v).keys()) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), index.get(w)));
    }
  }
  if (low.get(v) === index.get(v)) {
    const group = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) groups.push(group.sort());
  }
};
for (const f of sources) if (!index.has(f)) visit(f);

for (const [f, m] of uses) {
  const list = [...m.keys()].sort();
  console.log(`${f}: ${list.join(' ') || '-'}`);
  if (verbose) for (const to of list) console.log(`    ${to}: ${[...m.get(to)].sort().join(' ')}`);
}
if (!groups.length) {
  console.log('no cycle');
  process.exit(0);
}
for (const g of groups) {
  console.log(`cycle: ${g.join(' ')}`);
  for (const f of g)
    for (const [to, syms] of uses.get(f)) if (g.includes(to)) console.log(`    ${f} -> ${to}: ${[...syms].sort().join(' ')}`);
}
process.exit(1);
