'use strict'
// Peer benchmark: DAZN's Node.js loop guard,
// @dazn/lambda-powertools-middleware-stop-infinite-loop (a middy middleware),
// on the same SQS events as the Rust benches (tests/support/fixtures.rs,
// `aws_shaped_sqs_event(records, "{\"order\":1}", &at(2))` in benches/guard.rs).
//
// Run it with `bash scripts/peer.sh`, which installs the pinned packages
// (scripts/peer/package-lock.json) into target/peer/node_modules and runs
// `node --expose-gc scripts/peer/bench.js` with NODE_PATH pointing there.
//
// What is measured, in one process, interleaved (the order of the
// configurations rotates on every sample):
//   bare      middy(handler), handler returns the number of records
//   stop      middy(handler).use(stopInfiniteLoop())      the guard alone
//   full      middy(handler).use(correlationIds({ sampleDebugLogRate: 0.01 }))
//                           .use(stopInfiniteLoop())
//             the documented set-up: stop-infinite-loop only reads the
//             global CorrelationIds store, which the correlation-ids
//             middleware fills from the event (its README: apply it AFTER
//             correlation-ids). This is "guarded". The correlation-ids
//             middleware loads aws-sdk v2 at require time
//             (event-sources/dynamodb.js), so aws-sdk is pinned too.
//
// Every invocation gets a fresh event from JSON.parse of the serialized batch,
// as the Lambda Node.js runtime hands it over: the correlation-ids middleware
// mutates the event (non-configurable properties on each SQS record,
// `__context__['call-chain-length']` incremented on a direct invocation), so an
// event cannot be reused. Parsing and garbage collection (with --expose-gc)
// happen outside the timed region; only `await handler(event, context)` is
// timed, with process.hrtime.bigint().
//
// Environment: PEER_QUICK=1 for a quick smoke run with few samples.

const path = require('path')
const os = require('os')
const { createRequire } = require('module')

// Resolve the pinned packages: NODE_PATH (set by scripts/peer.sh), else
// target/peer/node_modules of this checkout.
const peerRequire = (() => {
  try {
    require.resolve('@middy/core')
    return require
  } catch (_) {
    return createRequire(path.join(__dirname, '..', '..', 'target', 'peer', 'package.json'))
  }
})()
let middy, correlationIds, stopInfiniteLoop, CorrelationIds
try {
  middy = peerRequire('@middy/core')
  correlationIds = peerRequire('@dazn/lambda-powertools-middleware-correlation-ids')
  stopInfiniteLoop = peerRequire('@dazn/lambda-powertools-middleware-stop-infinite-loop')
  CorrelationIds = peerRequire('@dazn/lambda-powertools-correlation-ids')
} catch (e) {
  console.error(`cannot load the DAZN packages (${e.message.split('\n')[0]}).`)
  console.error('Run `bash scripts/peer.sh`: it installs them into target/peer/node_modules.')
  process.exit(2)
}
const versionOf = (name) => peerRequire(`${name}/package.json`).version

// ---------------------------------------------------------------------------
// Fixtures, mirroring tests/support/fixtures.rs.

// FunctionId::from_identity (src/lineage.rs): 32-bit FNV-1a of the identity.
function functionId (identity) {
  let h = 0x811c9dc5
  for (const b of Buffer.from(identity, 'utf8')) {
    h ^= b
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, '0')
}
// benches/guard.rs `at(2)`: Lineage::new() with "bench-fn" recorded twice,
// encoded as v1.<hops>.<id>-<count>.
const LINEAGE = `v1.2.${functionId('bench-fn')}-2`
const BODY = '{"order":1}'
// The chain length DAZN's own SQS client would have written for a message
// sent by the second function of a chain (below the default threshold of 10:
// the correlation-ids middleware adds one, giving 3).
const DAZN_CHAIN_LENGTH = 2

function stringAttribute (value) {
  // A message attribute as Lambda delivers it in the SQS event JSON.
  return { stringValue: value, stringListValues: [], binaryListValues: [], dataType: 'String' }
}

// aws_shaped_sqs_event(records, body, lineage), plus the `call-chain-length`
// message attribute that DAZN's correlation-ids middleware reads
// (event-sources/sqs.js) and DAZN's SQS client writes.
function awsShapedSqsEvent (records, body, lineage, chainLength) {
  const header = `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;LoopGuard=${lineage}`
  const receiptHandle = 'AQEB' + 'x7Kq9ZpL'.repeat(48)
  const Records = new Array(records)
  for (let i = 0; i < records; i++) {
    Records[i] = {
      messageId: `${i.toString(16).padStart(8, '0')}-3b5b-4e4f-9a0b-2f8ec0a6d3c1`,
      receiptHandle,
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '1545082649183',
        SenderId: 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: '1545082649185',
        AWSTraceHeader: header
      },
      messageAttributes: {
        'loop-guard': stringAttribute(lineage),
        'call-chain-length': stringAttribute(String(chainLength))
      },
      md5OfBody: 'e4e68fb7bd0e697a0ae8f1bb342846b3',
      md5OfMessageAttributes: '00484c68...59e48fb7',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-2:123456789012:my-queue',
      awsRegion: 'us-east-2'
    }
  }
  return { Records }
}

// A direct invocation as DAZN's Lambda client sends it: the payload with the
// caller's correlation ids under `__context__` (event-sources/direct-invoke.js
// reads and increments `__context__['call-chain-length']`).
function directEvent (chainLength) {
  return { order: 1, __context__: { 'call-chain-length': chainLength } }
}

const CONTEXT = Object.freeze({
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  functionName: 'bench-fn',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-2:123456789012:function:bench-fn',
  memoryLimitInMB: '1024',
  getRemainingTimeInMillis: () => 300000
})

// ---------------------------------------------------------------------------
// The handlers.

const handler = async (event) => (event.Records ? event.Records.length : 1)
const CONFIGS = {
  bare: middy(handler),
  stop: middy(handler).use(stopInfiniteLoop()),
  full: middy(handler)
    .use(correlationIds({ sampleDebugLogRate: 0.01 }))
    .use(stopInfiniteLoop())
}

// ---------------------------------------------------------------------------
// Checks: the guard does its real work and lets these events through.

async function withConsoleErrorCaptured (f) {
  const original = console.error
  const lines = []
  console.error = (line) => lines.push(line)
  try {
    return { value: await f(), lines }
  } catch (error) {
    return { error, lines }
  } finally {
    console.error = original
  }
}

async function checks () {
  const out = []
  const fail = (msg) => { throw new Error(`check failed: ${msg}`) }

  // SQS, chain length 2 on every record: let through, per-record chain 3.
  const sqs = JSON.parse(JSON.stringify(awsShapedSqsEvent(10, BODY, LINEAGE, DAZN_CHAIN_LENGTH)))
  const n = await CONFIGS.full(sqs, CONTEXT)
  if (n !== 10) fail(`guarded SQS batch returned ${n}`)
  const perRecord = sqs.Records.map((r) => r.correlationIds && r.correlationIds.get()['call-chain-length'])
  if (!perRecord.every((c) => c === DAZN_CHAIN_LENGTH + 1)) fail(`per-record chain lengths ${perRecord}`)
  const globalAfterSqs = CorrelationIds.get()['call-chain-length']
  out.push(`SQS batch of 10, \`call-chain-length\` "${DAZN_CHAIN_LENGTH}" on each record: let through (returned ${n}); ` +
    `each record.correlationIds has call-chain-length ${perRecord[0]}; the global store the guard reads has ` +
    `call-chain-length ${globalAfterSqs}, so the guard compared \`${globalAfterSqs} || 1\` = 1 with 10`)

  // SQS, chain length 50 on every record: DAZN 1.29.0 still lets it through.
  const looping = JSON.parse(JSON.stringify(awsShapedSqsEvent(10, BODY, LINEAGE, 50)))
  const loopingRun = await withConsoleErrorCaptured(() => CONFIGS.full(looping, CONTEXT))
  out.push(`SQS batch of 10, \`call-chain-length\` "50" on each record (far past the threshold of 10): ` +
    (loopingRun.error
      ? `stopped (${loopingRun.error.message})`
      : `NOT stopped (returned ${loopingRun.value}, ${loopingRun.lines.length} error log lines): ` +
        'the per-record chain lengths never reach the global store that stop-infinite-loop reads'))

  // Direct invocation, chain 2: let through, global chain 3.
  const n1 = await CONFIGS.full(directEvent(DAZN_CHAIN_LENGTH), CONTEXT)
  const globalAfterDirect = CorrelationIds.get()['call-chain-length']
  if (n1 !== 1 || globalAfterDirect !== DAZN_CHAIN_LENGTH + 1) fail(`direct: returned ${n1}, chain ${globalAfterDirect}`)
  out.push(`direct invocation, \`__context__['call-chain-length']\` ${DAZN_CHAIN_LENGTH}: let through; ` +
    `the guard compared ${globalAfterDirect} with 10`)

  // Direct invocation, chain 9: stopped (9 + 1 >= 10), after logging the event.
  const stopped = await withConsoleErrorCaptured(() => CONFIGS.full(directEvent(9), CONTEXT))
  if (!stopped.error) fail('direct invocation at chain 9 was not stopped')
  out.push(`direct invocation, \`__context__['call-chain-length']\` 9: stopped ("${stopped.error.message}", ` +
    `${stopped.lines.length} error log line of ${stopped.lines.map((l) => String(l).length).join(', ')} bytes)`)

  CorrelationIds.clearAll()
  return out
}

// ---------------------------------------------------------------------------
// Timing.

const QUICK = process.env.PEER_QUICK === '1'
const SCENARIOS = [
  // name, records per invocation, invocations per sample, warm-up samples, samples
  { name: 'SQS, small body', records: 10, perSample: 100, warmup: 50, samples: 300, json: JSON.stringify(awsShapedSqsEvent(10, BODY, LINEAGE, DAZN_CHAIN_LENGTH)) },
  { name: 'SQS, small body', records: 10000, perSample: 1, warmup: 8, samples: 60, json: JSON.stringify(awsShapedSqsEvent(10000, BODY, LINEAGE, DAZN_CHAIN_LENGTH)) },
  { name: 'direct invocation', records: 1, perSample: 1000, warmup: 50, samples: 300, json: JSON.stringify(directEvent(DAZN_CHAIN_LENGTH)) }
]
if (QUICK) for (const s of SCENARIOS) { s.warmup = 2; s.samples = Math.max(5, Math.floor(s.samples / 20)) }

const gc = typeof global.gc === 'function' ? global.gc : () => {}
let sink = 0

// Nanoseconds per invocation over one sample of fresh events.
async function sample (h, json, count, expected) {
  gc()
  const events = new Array(count)
  for (let i = 0; i < count; i++) events[i] = JSON.parse(json)
  let got = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < count; i++) got += await h(events[i], CONTEXT)
  const t1 = process.hrtime.bigint()
  if (got !== expected * count) throw new Error(`handler returned ${got}, expected ${expected * count}`)
  sink += got
  return Number(t1 - t0) / count
}

function median (xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function run (scenario) {
  const names = Object.keys(CONFIGS)
  const times = Object.fromEntries(names.map((n) => [n, []]))
  for (let i = 0; i < scenario.warmup + scenario.samples; i++) {
    // Rotate the order so that no configuration always runs first.
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]
      const t = await sample(CONFIGS[name], scenario.json, scenario.perSample, scenario.records)
      if (i >= scenario.warmup) times[name].push(t)
    }
  }
  return times
}

const us = (ns) => (ns / 1000).toFixed(2)
const nsr = (ns) => ns.toFixed(ns < 10 && ns > -10 ? 2 : 1)

async function main () {
  const cpu = (os.cpus()[0] || {}).model || 'unknown cpu'
  console.log('# DAZN stop-infinite-loop peer benchmark')
  console.log()
  console.log(`node ${process.version} (V8 ${process.versions.v8}), ${os.platform()} ${os.arch()}, ${os.cpus().length} x ${cpu.trim()}`)
  console.log(`@dazn/lambda-powertools-middleware-stop-infinite-loop ${versionOf('@dazn/lambda-powertools-middleware-stop-infinite-loop')}, ` +
    `@dazn/lambda-powertools-middleware-correlation-ids ${versionOf('@dazn/lambda-powertools-middleware-correlation-ids')}, ` +
    `@dazn/lambda-powertools-correlation-ids ${versionOf('@dazn/lambda-powertools-correlation-ids')}, ` +
    `@dazn/lambda-powertools-logger ${versionOf('@dazn/lambda-powertools-logger')}, @middy/core ${versionOf('@middy/core')}`)
  const oneRecord = JSON.stringify(awsShapedSqsEvent(1, BODY, LINEAGE, DAZN_CHAIN_LENGTH).Records[0])
  const header = JSON.parse(oneRecord).attributes.AWSTraceHeader
  console.log(`SQS record: ${oneRecord.length} bytes of JSON, AWSTraceHeader ${header.length} bytes (LoopGuard=${LINEAGE}), ` +
    `message attributes loop-guard + call-chain-length "${DAZN_CHAIN_LENGTH}"`)
  console.log(`gc between samples: ${typeof global.gc === 'function' ? 'yes (--expose-gc)' : 'no (run with --expose-gc)'}` +
    (QUICK ? '; PEER_QUICK=1: few samples, numbers are rough' : ''))
  console.log()
  console.log('Checks (guarded = correlation-ids + stop-infinite-loop):')
  for (const line of await checks()) console.log(`- ${line}`)
  console.log()

  const rows = []
  for (const s of SCENARIOS) {
    const t = await run(s)
    const bare = median(t.bare)
    for (const [name, label] of [['full', 'correlation-ids + stop-infinite-loop'], ['stop', 'stop-infinite-loop alone']]) {
      const guarded = median(t[name])
      const paired = median(t[name].map((g, i) => g - t.bare[i]))
      rows.push(`| ${s.name} | ${s.records.toLocaleString('en-US')} | ${label} | ${us(bare)} | ${us(guarded)} | ` +
        `${nsr((guarded - bare) / s.records)} | ${nsr(paired / s.records)} | ${t.bare.length} x ${s.perSample} |`)
    }
  }
  console.log('| event | records | middleware | bare µs/inv (median) | guarded µs/inv (median) | (guarded − bare) / records, ns | median paired Δ / records, ns | samples x invocations |')
  console.log('|---|---:|---|---:|---:|---:|---:|---:|')
  for (const r of rows) console.log(r)
  if (sink === 0) console.log('(sink)')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
