// Small HTML helpers shared by the error pages and the dashboard.

export function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

/** True when the client is a browser: it asks for HTML before JSON. */
export function prefersHtml (accept: string | undefined): boolean {
  if (!accept) return false
  const html = accept.indexOf('text/html')
  const json = accept.indexOf('application/json')
  return html !== -1 && (json === -1 || html < json)
}
