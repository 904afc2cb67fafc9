// The deployment files keep the properties the docs promise: the systemd unit, the Dockerfile,
// compose.yaml and the Kubernetes manifests, by their fields (no engine or cluster needed; the
// image itself is built and run by test/docker/image.test.ts, npm run test:docker).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'
import { serverConfigSchema } from '../../src/config/schema.js'
import { execForm, parseDockerfile, stageEnv } from '../helpers/dockerfile.js'
import { REPO_ROOT } from '../helpers/project.js'

test('the systemd unit reloads on SIGHUP and leaves the server time to drain', async () => {
  const unit = await readFile(join(REPO_ROOT, 'scripts', 'systemd', 'tqserver.service'), 'utf8')
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1]
  assert.equal(value('Type'), 'simple')
  assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID')
  assert.equal(value('KillMode'), 'mixed')
  assert.equal(value('Restart'), 'on-failure')
  const [node, cli, command] = (value('ExecStart') ?? '').split(' ')
  assert.equal(node, '/usr/bin/node')
  assert.equal(command, 'start')
  // The package's bin, where npm install puts it: the file must exist in the package.
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { tqserver: string } }
  assert.equal(cli, join('/srv/tqserver/node_modules/tqserver', pkg.bin.tqserver))
  const drainAndKillSeconds = (serverConfigSchema.properties.drainTimeout.default + serverConfigSchema.properties.killTimeout.default) / 1000
  assert.ok(Number(value('TimeoutStopSec')) > drainAndKillSeconds, 'TimeoutStopSec exceeds drainTimeout + killTimeout')
})

const drainAndKillMs = serverConfigSchema.properties.drainTimeout.default + serverConfigSchema.properties.killTimeout.default
const seconds = (value: string) => {
  const match = /^(\d+)(ms|s|m)$/.exec(value)
  assert.ok(match, `a duration: ${value}`)
  return Number(match[1]) * ({ ms: 0.001, s: 1, m: 60 } as Record<string, number>)[match[2]!]!
}

test('the Dockerfile builds in its first stage, runs as non-root under an init, exec-form CMD, HEALTHCHECK on /livez', async () => {
  const stages = parseDockerfile(await readFile(join(REPO_ROOT, 'docker', 'Dockerfile'), 'utf8'))
  assert.ok(stages.length >= 2, 'multi-stage')
  assert.ok(stages[0]!.some(({ keyword, args }) => keyword === 'RUN' && /cli\/main\.js build/.test(args)), 'the workers are built in the image')
  const final = stages.at(-1)!
  const last = (keyword: string) => final.filter((instruction) => instruction.keyword === keyword).at(-1)?.args
  assert.ok(final.some(({ keyword, args }) => keyword === 'COPY' && args.startsWith('--from=')), 'the final stage copies from the build')
  assert.ok(!final.some(({ keyword, args }) => keyword === 'RUN' && /npm (ci|install)|tsc/.test(args)), 'nothing is built in the final stage')
  assert.ok(last('USER') !== undefined && !/^(root|0)(:|$)/.test(last('USER')!), 'a non-root user')
  const entrypoint = execForm(last('ENTRYPOINT') ?? '')
  assert.ok(entrypoint && /\/tini$/.test(entrypoint[0]!), 'tini is PID 1')
  const cmd = execForm(last('CMD') ?? '')
  assert.deepEqual(cmd, ['node', 'dist/src/cli/main.js', 'start'], 'exec form, node itself (no npm or shell between the signal and the server)')
  const stopSignal = last('STOPSIGNAL')
  assert.ok(stopSignal === undefined || stopSignal === 'SIGTERM')
  const healthcheck = last('HEALTHCHECK') ?? ''
  const healthCmd = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 4))
  assert.ok(healthCmd?.join(' ').includes('/livez'), 'HEALTHCHECK asks /livez')
  assert.equal(stageEnv(final).TQ_HOST, '0.0.0.0', 'reachable from outside the container')
  const ignored = (await readFile(join(REPO_ROOT, '.dockerignore'), 'utf8')).split('\n')
  for (const path of ['node_modules', 'dist', 'workers/*/bin', '.tqserver', 'logs']) {
    assert.ok(ignored.includes(path), `.dockerignore: no ${path} from the developer machine leaks in`)
  }
})

test('compose.yaml: healthcheck, no second init, stop_grace_period above the drain bound', async () => {
  const compose = parse(await readFile(join(REPO_ROOT, 'docker', 'compose.yaml'), 'utf8')) as {
    services: Record<string, { init?: boolean, stop_grace_period?: string, healthcheck?: { test: string[] }, build?: { dockerfile: string } }>
  }
  const service = compose.services.tqserver!
  assert.notEqual(service.init, true, 'the image\'s tini is PID 1')
  assert.ok(seconds(service.stop_grace_period ?? '10s') > drainAndKillMs / 1000, 'stop_grace_period exceeds drainTimeout + killTimeout')
  assert.ok(service.healthcheck?.test.join(' ').includes('/livez'))
  assert.equal(service.build?.dockerfile, 'docker/Dockerfile')
})

test('k8s: probes, preStop, a grace period above preStop + drain, resources, Service and PDB', async () => {
  const dir = join(REPO_ROOT, 'docker', 'k8s')
  const docs = (await Promise.all((await readdir(dir)).filter((name) => name.endsWith('.yaml')).map(async (name) =>
    parseAllDocuments(await readFile(join(dir, name), 'utf8')).map((doc) => doc.toJS() as K8sObject)))).flat()
  const byKind = (kind: string) => docs.find((doc) => doc.kind === kind)
  const deployment = byKind('Deployment') as K8sObject & { spec: DeploymentSpec }
  assert.ok(deployment, 'a Deployment')
  const labels = deployment.spec.selector.matchLabels
  assert.deepEqual(deployment.spec.template.metadata.labels, labels)
  assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a rolling update never has fewer ready replicas')
  const pod = deployment.spec.template.spec
  const container = pod.containers[0]!
  assert.equal(container.readinessProbe.httpGet.path, '/readyz')
  assert.equal(container.livenessProbe.httpGet.path, '/livez')
  assert.ok(container.startupProbe.httpGet.path, 'a startup probe')
  const preStop = container.lifecycle.preStop.exec.command
  assert.equal(preStop[0], 'sleep')
  const margin = pod.terminationGracePeriodSeconds - Number(preStop[1]) - drainAndKillMs / 1000
  assert.ok(margin >= 5, `terminationGracePeriodSeconds covers preStop + drain + kill with a margin (${margin} s)`)
  // Two generations of 3 example workers (~70 MB each) and the host (~140 MB) during a reload.
  const limit = container.resources.limits.memory
  assert.ok(/^\d+(Mi|Gi)$/.test(limit) && parseInt(limit) * (limit.endsWith('Gi') ? 1024 : 1) >= 140 + 2 * 3 * 70)
  assert.ok(container.resources.requests.memory && container.resources.requests.cpu)
  assert.equal(pod.securityContext.runAsNonRoot, true)

  const service = byKind('Service') as K8sObject & { spec: { selector: Record<string, string>, ports: Array<{ targetPort: string | number }> } }
  assert.deepEqual(service.spec.selector, labels)
  assert.equal(service.spec.ports[0]!.targetPort, container.ports[0]!.name)
  const pdb = byKind('PodDisruptionBudget') as K8sObject & { spec: { minAvailable: number, selector: { matchLabels: Record<string, string> } } }
  assert.deepEqual(pdb.spec.selector.matchLabels, labels)
  assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < deployment.spec.replicas, 'a node drain can evict one replica, never all')
})

interface K8sObject { kind: string, metadata: { name: string } }
interface Probe { httpGet: { path: string } }
interface DeploymentSpec {
  replicas: number
  selector: { matchLabels: Record<string, string> }
  strategy: { rollingUpdate: { maxUnavailable: number } }
  template: {
    metadata: { labels: Record<string, string> }
    spec: {
      terminationGracePeriodSeconds: number
      securityContext: { runAsNonRoot: boolean }
      containers: Array<{
        ports: Array<{ name: string }>
        readinessProbe: Probe
        livenessProbe: Probe
        startupProbe: Probe
        lifecycle: { preStop: { exec: { command: string[] } } }
        resources: { limits: { memory: string }, requests: { memory: string, cpu: string } }
      }>
    }
  }
}
