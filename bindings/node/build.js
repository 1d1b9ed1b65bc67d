#!/usr/bin/env node
'use strict';
// Builds build/wsnotify.node: the Node-API addon (src/*.c) with the C core
// (every .c under core/) compiled in, by calling the C compiler directly. No node-gyp:
// it would download Node's headers; Node-API's headers come from the
// node-api-headers package or the local Node install instead, so the
// build works offline.
//
// Where the core's sources are: csrc/ in a packed tarball (copied there by
// `npm pack`, see prepack.js), else the repository around bindings/node.
// WSNOTIFY_USE_SYSTEM_LIB=1 links the installed libwsnotify (pkg-config
// wsnotify, with an rpath: no LD_LIBRARY_PATH) instead of compiling it in.
//
// Knobs: CC (default cc), WSNOTIFY_WERROR=1 (warnings are errors, as in
// CI; off for users, whose newer compilers may warn about new things),
// WSNOTIFY_CFLAGS / WSNOTIFY_LDFLAGS (extra flags, e.g. sanitizers),
// WSNOTIFY_JOBS (parallel compiles, default: cores).

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const HERE = __dirname;
const OUT = path.join(HERE, 'build');
const NAPI_VERSION = 8; // Node >= 12.22/14.17/16: every Node from 18 on

// Every file under dir, as paths relative to it, sorted (Node 18.0's
// readdirSync has no `recursive`).
function walk(dir, rel = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out.sort();
}

// The warnings CMakeLists.txt gives the core (WSN_WARNINGS).
const WARNINGS = ['-Wall', '-Wextra', '-Wshadow', '-Wconversion',
  '-Wno-sign-conversion', '-Wstrict-prototypes', '-Wmissing-prototypes'];
const DEFAULT_PKG_MODULES = ['libwebsockets', 'jansson', 'msgpack', 'libsodium', 'hiredis', 'openssl'];

function truthy(name) {
  return ['1', 'yes', 'true', 'on'].includes(
    String(process.env[name] || '').trim().toLowerCase());
}

function sourceRoot() {
  for (const root of [path.join(HERE, 'csrc'), path.resolve(HERE, '..', '..')]) {
    if (fs.existsSync(path.join(root, 'include', 'wsnotify.h'))) return root;
  }
  throw new Error('wsnotify C sources not found: expected include/wsnotify.h ' +
    `in ${path.join(HERE, 'csrc')} (packed) or the repository around ${HERE}`);
}

function napiIncludeDir() {
  const tried = [];
  try {
    const pkg = require.resolve('node-api-headers/package.json', { paths: [HERE] });
    tried.push(path.join(path.dirname(pkg), 'include'));
  } catch { /* not installed: try the local Node install */ }
  tried.push(path.resolve(path.dirname(process.execPath), '..', 'include', 'node'));
  for (const dir of tried) {
    if (fs.existsSync(path.join(dir, 'node_api.h'))) return dir;
  }
  throw new Error('node_api.h not found (tried ' + tried.join(', ') +
    '): install node-api-headers (npm) or Node\'s headers (e.g. the ' +
    'nodejs package\'s include/node)');
}

function pkgConfig(args) {
  try {
    return execFileSync('pkg-config', args, { encoding: 'utf8' }).trim()
      .split(/\s+/).filter(Boolean);
  } catch (e) {
    throw new Error(`pkg-config ${args.join(' ')} failed: ` +
      `${(e.stderr || e.message || '').toString().trim()} (on Debian: ` +
      'apt-get install pkg-config libwebsockets-dev libjansson-dev ' +
      'libmsgpack-dev libsodium-dev libhiredis-dev)');
  }
}

// The pkg-config modules the core links, as CMakeLists.txt names them.
function pkgModules(root) {
  let text;
  try {
    text = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
  } catch {
    return DEFAULT_PKG_MODULES;
  }
  const skip = new Set(['REQUIRED', 'QUIET', 'IMPORTED_TARGET', 'GLOBAL',
    'NO_CMAKE_PATH', 'NO_CMAKE_ENVIRONMENT_PATH']);
  const mods = [];
  for (const m of text.matchAll(/pkg_check_modules\s*\(([^)]*)\)/gi)) {
    for (const w of m[1].split(/\s+/).filter(Boolean).slice(1)) {
      const name = w.split(/[<>=]/)[0];
      if (!skip.has(w) && !w.startsWith('${') && name && !mods.includes(name)) {
        mods.push(name);
      }
    }
  }
  return mods.length ? mods : DEFAULT_PKG_MODULES;
}

// A relocatable .pc gives libdir as ${pcfiledir}/../../lib: as an rpath
// that would stop resolving once the pkgconfig folder is gone (removing
// a -dev package removes it), so the rpath is the folder's real path.
function canonical(dir) {
  if (!dir) return dir;
  try { return fs.realpathSync(dir); } catch { return path.resolve(dir); }
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, sig) => (code === 0 ? resolve()
      : reject(new Error(`${cmd} ${args.join(' ')} failed (${sig || code})`))));
  });
}

function mtime(p) {
  try { return fs.statSync(p).mtimeMs; } catch { return -1; }
}

async function main() {
  const system = truthy('WSNOTIFY_USE_SYSTEM_LIB');
  const cc = process.env.CC || 'cc';
  const extraC = (process.env.WSNOTIFY_CFLAGS || '').split(/\s+/).filter(Boolean);
  const extraL = (process.env.WSNOTIFY_LDFLAGS || '').split(/\s+/).filter(Boolean);
  const warn = truthy('WSNOTIFY_WERROR') ? [...WARNINGS, '-Werror'] : WARNINGS;
  const napiInc = napiIncludeDir();

  const units = []; // [source, object, flags]
  const headers = [];
  let cflagsLib; let libs;
  const base = ['-std=c11', '-D_GNU_SOURCE', '-fPIC', '-O2', '-g',
    '-fvisibility=hidden', '-pthread', ...extraC];
  if (system) {
    cflagsLib = pkgConfig(['--cflags', 'wsnotify']);
    const libdir = canonical(pkgConfig(['--variable=libdir', 'wsnotify'])[0]);
    libs = [...pkgConfig(['--libs', 'wsnotify']),
      ...(libdir ? [`-Wl,-rpath,${libdir}`] : [])];
  } else {
    const root = sourceRoot();
    const mods = pkgModules(root);
    cflagsLib = [`-I${path.join(root, 'include')}`, ...pkgConfig(['--cflags', ...mods])];
    libs = pkgConfig(['--libs', ...mods]);
    // core/ has a folder per layer; its includes name the folder, so
    // core/ is the one include directory.
    const coreDir = path.join(root, 'core');
    for (const rel of walk(coreDir)) {
      const f = path.join(coreDir, rel);
      if (rel.endsWith('.c')) {
        units.push([f, path.join(OUT, 'core', rel.split(path.sep).join('-') + '.o'),
          [...base, ...warn, `-I${coreDir}`, ...cflagsLib]]);
      } else if (rel.endsWith('.h')) {
        headers.push(f);
      }
    }
    headers.push(path.join(root, 'include', 'wsnotify.h'));
  }
  const srcDir = path.join(HERE, 'src');
  for (const f of fs.readdirSync(srcDir).sort()) {
    if (f.endsWith('.c')) {
      units.push([path.join(srcDir, f), path.join(OUT, 'addon', f + '.o'),
        [...base, ...warn, `-DNAPI_VERSION=${NAPI_VERSION}`, `-I${napiInc}`,
          ...cflagsLib]]);
    } else if (f.endsWith('.h')) {
      headers.push(path.join(srcDir, f));
    }
  }

  // An object is rebuilt when its source, any header or its flags changed.
  const stamp = crypto.createHash('sha256')
    .update(JSON.stringify([cc, units.map((u) => u[2]), libs, system]))
    .digest('hex');
  const stampFile = path.join(OUT, 'flags.sha256');
  const sameFlags = fs.existsSync(stampFile) &&
    fs.readFileSync(stampFile, 'utf8') === stamp;
  const newestHeader = Math.max(0, ...headers.map(mtime));
  const todo = units.filter(([src, obj]) => !sameFlags ||
    mtime(obj) < Math.max(mtime(src), newestHeader));
  for (const d of ['core', 'addon']) fs.mkdirSync(path.join(OUT, d), { recursive: true });
  if (fs.existsSync(stampFile) && !sameFlags) fs.unlinkSync(stampFile);

  const jobs = Math.max(1, Number(process.env.WSNOTIFY_JOBS) || os.cpus().length);
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const [src, obj, flags] = todo[next++];
      console.log(`  CC ${path.relative(HERE, src)}`);
      await run(cc, [...flags, '-c', src, '-o', obj]);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));

  const target = path.join(OUT, 'wsnotify.node');
  if (todo.length || !sameFlags || !fs.existsSync(target)) {
    // Only the module entry points are exported: the core's wsn_*
    // symbols stay private to the addon.
    const map = path.join(OUT, 'exports.map');
    fs.writeFileSync(map, '{ global: napi_register_module_v1; ' +
      'node_api_module_get_api_version_v1; local: *; };\n');
    console.log(`  LD ${path.relative(HERE, target)}`);
    await run(cc, ['-shared', '-pthread', `-Wl,--version-script=${map}`,
      '-o', target, ...units.map((u) => u[1]), ...libs, ...extraL]);
  }
  fs.writeFileSync(stampFile, stamp);
}

main().catch((e) => {
  console.error(`wsnotify: build failed: ${e.message}`);
  process.exit(1);
});
