import type { Entry } from './task-cache.js'

/** A task's cache-control: `private, max-age=N` while a terminal task stays cached, `no-cache` for anything else. */
export function cacheControlFor(maxAgeSeconds: number | undefined): string {
  return maxAgeSeconds === undefined ? 'no-cache' : `private, max-age=${maxAgeSeconds}`
}

/** The cache-control of a hit: a terminal entry for what is left of its life, a live one not at all. */
export function hitCacheControl(hit: Entry, now: number): string {
  return cacheControlFor(hit.terminal ? Math.floor((hit.freshUntil - now) / 1000) : undefined)
}
