// The part of autocannon 8's API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  namespace autocannon {
    interface Request {
      method?: string
      path?: string
      headers?: Record<string, string>
      body?: string | Buffer
      setupRequest?: (req: Request, context: Record<string, unknown>) => Request | undefined
    }
    interface Options {
      url: string
      connections?: number
      duration?: number
      amount?: number
      timeout?: number
      pipelining?: number
      sampleInt?: number
      workers?: number
      headers?: Record<string, string>
      requests?: Request[]
      excludeErrorStats?: boolean
    }
    interface Histogram {
      average: number
      mean: number
      stddev: number
      min: number
      max: number
      total: number
      p50: number
      p90: number
      p99: number
      p99_9: number
    }
    interface Result {
      duration: number
      errors: number
      timeouts: number
      resets: number
      non2xx: number
      '2xx': number
      '4xx': number
      '5xx': number
      statusCodeStats: Record<string, { count: number }>
      latency: Histogram & { totalCount: number }
      requests: Histogram & { sent: number }
      throughput: Histogram
    }
  }
  function autocannon(opts: autocannon.Options): PromiseLike<autocannon.Result>
  export default autocannon
}
