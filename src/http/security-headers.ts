import type { HeaderList } from './header-list.js'

/** Headers fit for a JSON API, on every answer; a route that knows better (task fetch) sets its own cache-control. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store'
}

/**
 * SECURITY_HEADERS but cache-control, as a flat list for an answer that sets its own cache-control next (the hit
 * lane): copying this list and appending costs far less than copying an object and adding keys to the copy.
 */
export const SECURITY_HEADER_LIST: Readonly<HeaderList> = Object.entries(SECURITY_HEADERS)
  .filter(([name]) => name !== 'cache-control')
  .flat()
