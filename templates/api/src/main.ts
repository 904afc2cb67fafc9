// A tqserver JSON API worker: served at its folder's route (workers/<name> -> /<name>), in its own
// process. Requests arrive with the route removed: GET /<name>/hello reaches this app as GET /hello.
import { serve } from 'tqserver/worker'

await serve(async (app, env) => {
  app.get('/', async () => ({ worker: env.name, route: env.route }))

  // Fastify validates the query against the schema: GET /hello?name= answers 400.
  app.get('/hello', {
    schema: {
      querystring: {
        type: 'object',
        properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
        additionalProperties: false
      }
    }
  }, async (request) => {
    const { name = 'world' } = request.query as { name?: string }
    return { hello: name }
  })
})
