// Percentiles for the benchmarks' reports, by the same rule as /health's latencies.
import { nearestRank } from '../src/routing/upstream-traffic.js'

export function percentile (values: number[], p: number): number {
  return nearestRank([...values].sort((a, b) => a - b), p)
}

export const median = (values: number[]): number => percentile(values, 0.5)
