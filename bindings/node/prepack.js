#!/usr/bin/env node
'use strict';
// `npm pack` runs this first: the C core the addon compiles (core/*.c,
// core/*.h, include/*.h, CMakeLists.txt for the pkg-config modules) is
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
for (const [dir, re] of Object.entries(pick)) {
  fs.mkdirSync(path.join(CSRC, dir), { recursive: true });
  for (const f of fs.readdirSync(path.join(REPO, dir))) {
    if (re.test(f)) fs.copyFileSync(path.join(REPO, dir, f), path.join(CSRC, dir, f));
  }
}
fs.copyFileSync(path.join(REPO, 'CMakeLists.txt'), path.join(CSRC, 'CMakeLists.txt'));
