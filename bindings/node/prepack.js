#!/usr/bin/env node
'use strict';
// `npm pack` runs this first: the C core the addon compiles (core/**/*.c,
// core/**/*.h, include/*.h, CMakeLists.txt for the pkg-config modules) is
// copied into csrc/, so the tarball builds anywhere, as Python's sdist
// does. `--clean` (postpack) removes the copy again.

const fs = require('node:fs');
const path = require('node:path');

const HERE = __dirname;
const REPO = path.resolve(HERE, '..', '..');
const CSRC = path.join(HERE, 'csrc');

fs.rmSync(CSRC, { recursive: true, force: true });
if (process.argv.includes('--clean')) process.exit(0);

if (!fs.existsSync(path.join(REPO, 'include', 'wsnotify.h'))) {
  console.error(`prepack: no include/wsnotify.h in ${REPO}: pack from a wsnotify checkout`);
  process.exit(1);
}
const pick = { core: /\.[ch]$/, include: /\.h$/ };
// Copies the files of dir (and of its folders: core/ has one per layer)
// whose names match re.
function copyTree(dir, re) {
  fs.mkdirSync(path.join(CSRC, dir), { recursive: true });
  for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) copyTree(rel, re);
    else if (re.test(e.name)) fs.copyFileSync(path.join(REPO, rel), path.join(CSRC, rel));
  }
}
for (const [dir, re] of Object.entries(pick)) copyTree(dir, re);
fs.copyFileSync(path.join(REPO, 'CMakeLists.txt'), path.join(CSRC, 'CMakeLists.txt'));
