// Decorates the root instance, once, with the registry every other tqserver plugin shares.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Registry } from '../src/routing/route-table.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** tqserver's route table, worker instances and upstreams; also start/stop and status. */
    tqserver: Registry
  }
}

async function registryPlugin (fastify: FastifyInstance): Promise<void> {
  fastify.decorate('tqserver', new Registry())
}

export const tqserverRegistry = fp(registryPlugin, { name: 'tqserver-registry', fastify: '5.x' })
export default tqserverRegistry
