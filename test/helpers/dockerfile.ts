// Reads a Dockerfile into its stages and instructions (continuations joined, comments dropped),
// enough to check what an image will do without a Docker engine.
export interface Instruction { keyword: string, args: string }
export type Stage = Instruction[]

export function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  const logical = text.replace(/\\\n(\s*#.*\n)*/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  for (const line of logical) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    if (keyword.toUpperCase() === 'FROM') stages.push([])
    stages.at(-1)?.push({ keyword: keyword.toUpperCase(), args })
  }
  return stages
}

/** The arguments of an exec-form instruction (a JSON array), or undefined for the shell form. */
export function execForm (args: string): string[] | undefined {
  try {
    const parsed = JSON.parse(args) as unknown
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : undefined
  } catch {
    return undefined
  }
}

/** ENV instructions of a stage as one record (the KEY=value form). */
export function stageEnv (stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const { keyword, args } of stage) {
    if (keyword !== 'ENV') continue
    for (const [, key, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) env[key!] = value!.replace(/^"|"$/g, '')
  }
  return env
}
