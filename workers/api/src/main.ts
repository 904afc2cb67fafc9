// A small JSON API, served at /api: requests arrive with /api removed (/api/hello -> /hello).
import { serve } from 'tqserver/worker'

interface Note { title: string, tags?: string[] }

await serve(async (app, env) => {
  app.get('/hello', {
    schema: { querystring: { type: 'object', properties: { name: { type: 'string', maxLength: 100 } } } }
  }, async (request) => {
    const { name = 'world' } = request.query as { name?: string }
    return { hello: name, worker: env.name, pid: process.pid }
  })

  // Echoes a validated note: Fastify answers 400 for a body that does not match the schema.
  app.post<{ Body: Note }>('/echo', {
    schema: {
      body: {
        type: 'object',
        required: ['title'],
        additionalProperties: false,
        properties: {
          title: { type: 'string', minLength: 1, maxLength: 200 },
          tags: { type: 'array', items: { type: 'string', maxLength: 50 }, maxItems: 10 }
        }
      }
    }
  }, async (request, reply) => {
    return reply.code(201).send({ received: request.body, at: new Date().toISOString() })
  })
})
