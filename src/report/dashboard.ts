// The /health dashboard: one HTML page, everything inline (no CDN, no build step). The body is
// rendered by renderBody() on the server, so the page works without JavaScript, and the same
// function (sent as its source) re-renders it in the browser from a server-sent event stream.
import type { HealthReport } from './health-report.js'
import { escapeHtml } from '../html.js'
import { HOST_PREFIX } from '../url-paths.js'

export const DASHBOARD_STREAM = `${HOST_PREFIX}/health/stream`

/**
 * Renders the report as HTML. Self-contained on purpose: its source is sent to the browser, so it
 * must not use anything from outside its own body.
 */
export function renderBody (report: HealthReport, now: number): string {
  const esc = (value: unknown) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const ago = (at: number | null) => {
    if (!at) return '—'
    const s = Math.max(0, Math.round((now - at) / 1000))
    return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ago`
  }
  const duration = (ms: number | null) => {
    if (ms === null) return '—'
    const s = Math.floor(ms / 1000)
    return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  }
  const mb = (bytes: number | null) => bytes === null ? '—' : `${(bytes / 1048576).toFixed(0)} MB`
  // Worker statuses, instance states and event types, by colour.
  const tone = (state: string) => ({
    healthy: 'good', HEALTHY: 'good', started: 'good', switched: 'good', recovered: 'good',
    degraded: 'warn', UNHEALTHY: 'warn', STARTING: 'warn', BACKOFF: 'warn', unhealthy: 'bad', replaced: 'warn', 'start-failed': 'warn',
    CRASHED: 'bad', FAILED: 'bad', crashed: 'bad', failed: 'bad', 'build-failed': 'bad'
  } as Record<string, string>)[state] ?? 'off'
  const badge = (text: string) => `<span class="badge ${tone(text)}">${esc(text)}</span>`

  const workers = Object.entries(report.workers)
  const counts = workers.reduce<Record<string, number>>((all, [, w]) => ({ ...all, [w.status]: (all[w.status] ?? 0) + 1 }), {})
  const reload = report.lastReload
  const header = `<header class="top">
  <h1>tqserver ${badge(report.status)}</h1>
  <p class="summary">${workers.length} worker${workers.length === 1 ? '' : 's'}: ${Object.entries(counts).map(([status, n]) => `${n} ${esc(status)}`).join(', ') || 'none'}
  · updated <span data-at="${report.generatedAt}">${ago(report.generatedAt)}</span>
  ${reload ? `· last reload ${ago(reload.at)} (${esc(reload.trigger)}, ${reload.error ? 'refused' : `${reload.durationMs} ms`})` : ''}</p>
</header>`

  const cards = workers.map(([name, w]) => {
    const rows = w.instances.map((i) => `<tr>
      <td>${i.id}</td><td>${i.pid ?? '—'}</td><td>${i.port ?? '—'}</td><td>${badge(i.state)}</td>
      <td>${duration(i.uptimeMs)}</td><td>${i.restarts}</td><td>${mb(i.rssBytes)}</td><td>${i.cpuPercent === null ? '—' : `${i.cpuPercent}%`}</td>
      <td>${i.requests}</td><td class="${i.errors > 0 ? 'bad-text' : ''}">${i.errors}</td><td>${i.inflight}</td>
      <td>${i.latencyMs ? `${i.latencyMs.p50} / ${i.latencyMs.p99}` : '—'}</td>
      <td title="${esc(i.lastCheckError ?? '')}">${i.lastCheckError ? `<span class="bad-text">${esc(i.lastCheckError)}</span>` : ago(i.lastCheck)}</td></tr>`).join('')
    const build = w.lastBuild
    const output = w.output.map((line) => `<span class="${line.stream}">${esc(line.text)}</span>`).join('\n')
    return `<section class="card ${tone(w.status)}" data-worker="${esc(name)}">
  <h2>${esc(name)} <code>${esc(w.route)}</code> ${badge(w.status)} <span class="state">${esc(w.state)}</span></h2>
  ${w.instances.length > 0
    ? `<div class="scroll"><table><thead><tr><th>#</th><th>pid</th><th>port</th><th>state</th><th>uptime</th><th>restarts</th><th>memory</th><th>CPU</th><th>requests</th><th>errors</th><th>in flight</th><th>p50 / p99 ms</th><th>checked</th></tr></thead><tbody>${rows}</tbody></table></div>`
    : '<p class="muted">No instance.</p>'}
  <p class="meta">build <code>${esc(build.id ?? 'none')}</code>${build.mode ? ` (${esc(build.mode)})` : ''} ${build.builtAt ? `${ago(build.builtAt)}, ${build.durationMs} ms` : ''}
  ${w.lastSwitch ? ` · switched ${ago(w.lastSwitch.at)}: ${esc(w.lastSwitch.reason)}` : ''}</p>
  ${build.error ? `<div class="problem"><strong>Build failed ${ago(build.error.at)}</strong><pre>${esc(build.error.message)}</pre></div>` : ''}
  ${w.lastError ? `<div class="problem"><strong>Last error ${ago(w.lastError.at)}</strong><pre>${esc(w.lastError.message)}</pre></div>` : ''}
  ${w.output.length > 0 ? `<details data-key="output-${esc(name)}"><summary>Recent output (${w.output.length} line${w.output.length === 1 ? '' : 's'})</summary><pre class="output">${output}</pre></details>` : ''}
</section>`
  }).join('\n')

  const planes = (report.dataPlanes ?? []).map((p) => `<tr><td>${p.pid}</td><td>${p.role === 'control' ? 'control plane' : 'data plane'}</td>
      <td>${duration(now - p.startedAt)}</td><td>${p.restarts}</td><td>${p.memoryMb === null ? '—' : `${p.memoryMb} MB`}</td><td>${p.cpuPercent === null ? '—' : `${p.cpuPercent}%`}</td><td>${p.requests}</td><td>${p.inflight}</td></tr>`).join('')
  const proxies = planes && `<section class="card" data-planes><h2>Processes serving the port</h2><div class="scroll"><table><thead><tr><th>pid</th><th>role</th><th>uptime</th><th>restarts</th><th>memory</th><th>CPU</th><th>requests</th><th>in flight</th></tr></thead><tbody>${planes}</tbody></table></div></section>`

  // The certificate served on the port: its names, expiry, and the last failure to load or renew one.
  const certificate = report.tls?.certificate
  const left = certificate?.daysLeft
  const tls = report.tls && `<section class="card ${left === undefined || left < 7 ? 'bad' : left < 21 || report.tls.lastError ? 'warn' : 'good'}" data-tls><h2>HTTPS certificate <span class="state">${report.tls.source === 'acme' ? 'ACME' : 'files'}</span></h2>
  ${certificate
    ? `<p class="meta">${esc(certificate.names.join(', '))} · ${left} days left (until ${esc(new Date(certificate.notAfter).toISOString().slice(0, 10))}) · issued by ${esc(certificate.issuer)} · loaded ${ago(certificate.loadedAt)}</p>`
    : '<p class="muted">None yet: HTTPS handshakes fail until one is issued.</p>'}
  ${report.tls.lastError ? `<div class="problem"><strong>Failed ${ago(report.tls.lastError.at)}; the certificate above is still served</strong><pre>${esc(report.tls.lastError.message)}</pre></div>` : ''}
</section>`

  const events = [...report.events].reverse().map((e) => `<li><time>${ago(e.at)}</time> ${badge(e.type)} ${e.worker ? `<strong>${esc(e.worker)}</strong> ` : ''}${esc(e.message)}</li>`).join('')
  return `${header}
<div class="layout">
  <div class="workers">${cards || '<p class="muted">No workers.</p>'}${proxies}${tls ?? ''}</div>
  <aside class="events"><h2>Recent events</h2>${events ? `<ol>${events}</ol>` : '<p class="muted">None yet.</p>'}</aside>
</div>`
}

const STYLE = `
:root { color-scheme: light dark; --good: #1a7f37; --warn: #9a6700; --bad: #cf222e; --off: #6e7781;
  --bg: #f6f8fa; --card: #fff; --line: #d0d7de; --text: #1f2328; --muted: #656d76; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --card: #161b22; --line: #30363d; --text: #e6edf3; --muted: #8d96a0;
  --good: #3fb950; --warn: #d29922; --bad: #f85149; --off: #8d96a0; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.25rem; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; }
h1 { margin: 0; font-size: 1.4rem; display: flex; gap: .6rem; align-items: center; }
h2 { margin: 0 0 .6rem; font-size: 1.05rem; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.top { margin-bottom: 1rem; } .summary { margin: .3rem 0 0; color: var(--muted); }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 22rem; gap: 1rem; align-items: start; }
@media (max-width: 1100px) { .layout { grid-template-columns: 1fr; } }
.card, .events { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1rem; }
.card { margin-bottom: 1rem; border-left: 4px solid var(--off); }
.card.good { border-left-color: var(--good); } .card.warn { border-left-color: var(--warn); } .card.bad { border-left-color: var(--bad); }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .75rem; font-weight: 600; color: #fff; background: var(--off); }
.badge.good { background: var(--good); } .badge.warn { background: var(--warn); } .badge.bad { background: var(--bad); }
.state { color: var(--muted); font-size: .8rem; font-weight: 400; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
td:last-child { white-space: normal; } .scroll { overflow-x: auto; }
th { color: var(--muted); font-weight: 500; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, monospace; }
.meta, .muted { color: var(--muted); margin: .6rem 0 0; }
.problem { margin-top: .6rem; border: 1px solid var(--bad); border-radius: 6px; padding: .5rem .7rem; }
.problem strong { color: var(--bad); }
pre { margin: .4rem 0 0; white-space: pre-wrap; word-break: break-word; font: .8rem/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
details { margin-top: .6rem; } summary { cursor: pointer; color: var(--muted); }
.output { max-height: 16rem; overflow: auto; background: var(--bg); padding: .5rem; border-radius: 6px; }
.output .stderr { color: var(--bad); } .bad-text { color: var(--bad); }
.events ol { list-style: none; margin: 0; padding: 0; } .events li { padding: .35rem 0; border-bottom: 1px solid var(--line); }
.events time { color: var(--muted); font-size: .8rem; margin-right: .3rem; }
footer { margin-top: 1rem; color: var(--muted); }`

/** The whole page; `query` ("?token=...") is kept for the event stream and the JSON link. */
export function renderDashboard (report: HealthReport, query: string): string {
  const stream = `${DASHBOARD_STREAM}${query}`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tqserver: ${escapeHtml(report.status)}</title>
<style>${STYLE}</style>
</head>
<body>
<main id="app">${renderBody(report, Date.now())}</main>
<footer>Updates live. <a href="/health${escapeHtml(query ? `${query}&format=json` : '?format=json')}">JSON</a> · <span id="connection">static</span></footer>
<script>
const renderBody = ${renderBody.toString()}
const app = document.getElementById('app')
const connection = document.getElementById('connection')
let last = null
function draw () {
  if (!last) return
  // Keep what the reader opened.
  const open = new Set([...app.querySelectorAll('details[open]')].map((d) => d.dataset.key))
  app.innerHTML = renderBody(last, Date.now())
  for (const d of app.querySelectorAll('details')) if (open.has(d.dataset.key)) d.open = true
  document.title = 'tqserver: ' + last.status
}
const events = new EventSource(${JSON.stringify(stream)})
events.addEventListener('report', (event) => { last = JSON.parse(event.data); draw() })
events.addEventListener('open', () => { connection.textContent = 'live' })
events.addEventListener('error', () => { connection.textContent = 'reconnecting…' })
</script>
</body>
</html>
`
}
