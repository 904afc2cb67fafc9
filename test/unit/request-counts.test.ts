// src/report/request-counts.ts counts requests in plain arrays and hands them to prom-client only
// when scraped: /metrics must read exactly as prom-client's own Counter and Histogram would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Histogram, Registry } from 'prom-client'
import { RequestCounts } from '../../src/report/request-counts.js'

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

test('requests_total and request_duration_seconds read as prom-client would count them, series for series', async () => {
  const expected = new Registry()
  const counter = new Counter({ name: 'tqserver_requests_total', help: 'Requests proxied to workers, by status class ("failed": no complete answer)', labelNames: ['worker', 'status_class'], registers: [expected] })
  const histogram = new Histogram({ name: 'tqserver_request_duration_seconds', help: 'Time from a request reaching the host to the end of its answer', labelNames: ['worker'], buckets: BUCKETS, registers: [expected] })
  const actual = new Registry()
  const counts = new RequestCounts({ prefix: 'tqserver_', buckets: BUCKETS, registers: [actual] })
  // Every status class, no answer (0), codes past 5xx, durations on bounds, between them and past the last.
  const statuses = [0, 101, 200, 204, 301, 404, 500, 503, 650, 799]
  const durationsMs = [0.2, 1, 2.5, 7, 999.9, 1000, 10_000, 20_000]
  for (let i = 0; i < 400; i++) {
    const worker = ['api', 'web', 'a "quoted" one'][i % 3]!
    const statusCode = statuses[(i * 7) % statuses.length]!
    const durationMs = durationsMs[i % durationsMs.length]!
    counter.inc({ worker, status_class: ['1xx', '2xx', '3xx', '4xx', '5xx'][Math.floor(statusCode / 100) - 1] ?? 'failed' })
    histogram.observe({ worker }, durationMs / 1000)
    counts.record(worker, statusCode, durationMs)
  }
  // Series come in another order (each worker's together); the lines are the same.
  const lines = async (registry: Registry) => (await registry.metrics()).split('\n').sort()
  assert.deepEqual(await lines(actual), await lines(expected))
  const asJson = async (registry: Registry) => (await registry.getMetricsAsJSON()).map(({ name, type, aggregator, values }) =>
    ({ name, type, aggregator, values: values.map(({ labels, value, ...rest }) => JSON.stringify({ labels, value, metricName: (rest as { metricName?: string }).metricName })).sort() }))
  assert.deepEqual(await asJson(actual), await asJson(expected), 'the same JSON, which an aggregating registry reads')
})
