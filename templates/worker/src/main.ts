// A tqserver worker: served at its folder's route (workers/<name> -> /<name>), in its own process.
// Requests arrive with the route removed: GET /<name>/hello reaches this app as GET /hello.
import { serve } from 'tqserver/worker'

await serve(async (app, env) => {
  app.get('/', async () => ({ worker: env.name, route: env.route }))

  app.get('/hello', async (request) => {
    const { name = 'world' } = request.query as { name?: string }
    return { hello: name }
  })
})
