// Worker port ranges, one per test file: files run two at a time, and two pools probing the same
// range could both hand out a port before either worker has bound it.
export const PORTS = {
  proxyRouting: '20000-20099',
  proxyStreaming: '20100-20199',
  workerDown: '20200-20299',
  staticFiles: '20300-20399',
  embedding: '20400-20499',
  plainWorker: '20500-20599',
  startFailure: '20600-20699',
  cliShutdown: '20700-20799',
  cliErrors: '20800-20899',
  cliCommands: '20900-20999',
  portPool: '21000-21099',
  examples: '21100-21199',
  reloadStorm: '21200-21299',
  hotReload: '21300-21399',
  liveReload: '21400-21499',
  prodReload: '21500-21599',
  deploy: '21600-21699',
  healthChecks: '21700-21799',
  dashboard: '21800-21899'
} as const
