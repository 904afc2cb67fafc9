// The site's front page, served at /. The stylesheet comes from public/ (served by the host, this
// process never sees it); the page template from private/templates/ (read by this worker only).
import { readFile } from 'node:fs/promises'
import { serve } from 'tqserver/worker'

// The working directory is this worker's folder (workers/index/).
const template = await readFile('private/templates/page.html', 'utf8')

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

function render (values: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => escapeHtml(values[key] ?? ''))
}

await serve(async (app, env) => {
  app.get('/', async (request, reply) => {
    const { name = 'there' } = request.query as { name?: string }
    return reply.type('text/html; charset=utf-8').send(render({
      name,
      pid: String(process.pid),
      mode: env.mode,
      time: new Date().toISOString()
    }))
  })
})
