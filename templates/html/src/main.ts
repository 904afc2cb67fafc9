// A tqserver HTML worker: served at its folder's route (workers/<name> -> /<name>), in its own
// process. The host serves public/ itself: public/style.css is at /<name>/style.css.
import { serve } from 'tqserver/worker'

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const page = (route: string, name: string) => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Hello, ${escape(name)}</title>
  <link rel="stylesheet" href="${route === '/' ? '' : route}/style.css">
</head>
<body>
  <main>
    <h1>Hello, ${escape(name)}</h1>
    <form method="get" action="${route === '/' ? '/' : `${route}/`}">
      <label>Your name <input name="name" value="${escape(name)}" maxlength="100"></label>
      <button>Greet</button>
    </form>
  </main>
</body>
</html>
`

await serve(async (app, env) => {
  app.get('/', async (request, reply) => {
    const { name = 'world' } = request.query as { name?: string }
    return reply.type('text/html; charset=utf-8').send(page(env.route, name.slice(0, 100)))
  })
})
