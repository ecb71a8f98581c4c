import { ENV_VARIABLES } from '../config.js'
import { VERSION } from './build-info.js'

export interface CliAnswer {
  /** printed on stdout (exit 0) or stderr (exit non-zero) */
  text: string
  code: number
}

const USAGE = (): string =>
  [
    `mj-gateway ${VERSION}: caching reverse proxy for the Midjourney task API (midjourney-proxy / QuickRouter).`,
    '',
    'usage: npm start [-- --help | --version]',
    '       node dist/src/main.js [--help | --version]',
    '       node --env-file=.env dist/src/main.js      (Node 20.6+: variables from a file; see config/example.env)',
    '',
    'Configured by environment variables only (README "Configuration"; a bad value stops start-up with one line):',
    ...ENV_VARIABLES.map((v) => `  ${v}`),
    '',
    'Signals: SIGTERM/SIGINT finish in-flight requests and exit 0; SIGHUP re-reads CLIENT_KEYS_FILE.'
  ].join('\n')

/** What the command line asks for before the gateway starts: help, the version, or nothing (undefined: start). */
export function cliAnswer(args: readonly string[]): CliAnswer | undefined {
  const [first] = args
  if (first === undefined) return undefined
  if (args.length === 1 && (first === '--help' || first === '-h')) return { text: USAGE(), code: 0 }
  if (args.length === 1 && (first === '--version' || first === '-v')) return { text: VERSION, code: 0 }
  return { text: `mj-gateway: unknown argument ${JSON.stringify(args.join(' '))}; the gateway takes no arguments but --help and --version (configuration is by environment variables)`, code: 2 }
}
