// Percentiles for the benchmarks' reports: nearest rank (p95 of 20 samples is the 19th).
export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] ?? NaN
}

export const median = (values: number[]): number => percentile(values, 0.5)
