#!/usr/bin/env node
// bench/ort/ort_bench.js - time one ONNX model in ONNX Runtime (onnxruntime-node),
// the peer of bench/ort/lib_bench.c; prints one JSON line.
//
//   node bench/ort/ort_bench.js --model M.onnx --dims 256 [--batch 16] [--seconds 2] [--runs 1]
//        [--threads 2] [--inter 1] [--mode sequential|parallel] [--opt all|extended|basic|disabled]
//        [--arena 1] [--mempattern 1] [--spin 1]
//   node bench/ort/ort_bench.js --model M.onnx --check IN.f32 --shape 3,256 --out OUT.f32
//
// Timing is bench/ort/lib_bench.c's: one warm-up call, then --runs runs, each
// repeating session.run for at least --seconds seconds (and at least twice);
// images/s of every run, their median/min/max. Peak RSS is the process's
// VmHWM (/proc/self/status) at the end; vmhwm_before_session_mib is node's own
// part (before the session exists), so the engine's share can be told apart.
// onnxruntime-node is found through NODE_PATH (the make target installs it
// into build/ort/node_modules).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function die(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(1);
}

function parse(argv) {
  const o = { batch: 16, seconds: 2, runs: 1, threads: 2, inter: 1, mode: 'sequential',
              opt: 'all', arena: 1, mempattern: 1, spin: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith('--')) die(`unexpected argument ${k}`);
    const v = argv[++i];
    if (v === undefined) die(`${k} needs a value`);
    o[k.slice(2)] = v;
  }
  for (const k of ['batch', 'seconds', 'runs', 'threads', 'inter', 'arena', 'mempattern', 'spin']) {
    const x = Number(o[k]);
    if (!Number.isFinite(x) || x < 0) die(`bad --${k} ${o[k]}`);
    o[k] = x;
  }
  if (!o.model) die('--model is required');
  if (!['sequential', 'parallel'].includes(o.mode)) die(`bad --mode ${o.mode}`);
  if (!['all', 'extended', 'basic', 'disabled'].includes(o.opt)) die(`bad --opt ${o.opt}`);
  return o;
}

function vmhwmMiB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

function spread(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  const med = n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  const r = (x) => Math.round(x * 100) / 100;
  return { median: r(med), min: r(s[0]), max: r(s[n - 1]) };
}

function sessionOptions(o) {
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: o.opt,
    intraOpNumThreads: o.threads,
    interOpNumThreads: o.inter,
    executionMode: o.mode,
    enableCpuMemArena: !!o.arena,
    enableMemPattern: !!o.mempattern,
    // spinning worker threads wait for work by busy-looping (ORT's default)
    extra: { session: { intra_op: { allow_spinning: o.spin ? '1' : '0' } } },
  };
}

function filled(n, seed) {
  // uniform in [-1, 1) from a small LCG: the values do not matter for speed
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

async function main() {
  const o = parse(process.argv.slice(2));
  const before = vmhwmMiB();
  const t0 = process.hrtime.bigint();
  const sess = await ort.InferenceSession.create(o.model, sessionOptions(o));
  const createS = Number(process.hrtime.bigint() - t0) * 1e-9;
  const inName = sess.inputNames[0], outName = sess.outputNames[0];

  if (o.check !== undefined) {
    const shape = String(o.shape || '').split(',').map(Number);
    if (!shape.length || shape.some((x) => !Number.isInteger(x) || x < 1)) die('bad --shape');
    const buf = fs.readFileSync(o.check);
    const n = shape.reduce((a, b) => a * b, 1);
    if (buf.length !== 4 * n) die(`${o.check}: ${buf.length} bytes, --shape needs ${4 * n}`);
    const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    const out = (await sess.run({ [inName]: new ort.Tensor('float32', x, shape) }))[outName];
    if (!o.out) die('--check needs --out');
    fs.writeFileSync(o.out, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    return;
  }

  const dims = String(o.dims || '').split(',').map(Number);
  if (!dims.length || dims.some((x) => !Number.isInteger(x) || x < 1)) die('bad or missing --dims');
  const B = o.batch;
  if (!Number.isInteger(B) || B < 1) die(`bad --batch ${B}`);
  const shape = [B, ...dims];
  const x = new ort.Tensor('float32', filled(shape.reduce((a, b) => a * b, 1), 12345), shape);
  const feeds = { [inName]: x };
  await sess.run(feeds); // warm-up: the first call allocates and plans
  const rates = [];
  for (let r = 0; r < o.runs; r++) {
    let calls = 0;
    const start = process.hrtime.bigint();
    let el = 0;
    while (calls < 2 || el < o.seconds) {
      await sess.run(feeds);
      calls++;
      el = Number(process.hrtime.bigint() - start) * 1e-9;
    }
    rates.push((calls * B) / el);
  }
  const res = {
    engine: 'onnxruntime', version: ort.env.versions.common, model: o.model, batch: B,
    options: { threads: o.threads, inter: o.inter, mode: o.mode, opt: o.opt, arena: o.arena,
               mempattern: o.mempattern, spin: o.spin },
    img_per_s: spread(rates), runs: rates.map((v) => Math.round(v * 100) / 100),
    session_create_s: Math.round(createS * 1000) / 1000,
    vmhwm_before_session_mib: before && Math.round(before * 10) / 10,
    peak_rss_mib: Math.round(vmhwmMiB() * 10) / 10,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().catch((e) => die(e && e.stack ? e.stack : String(e)));
