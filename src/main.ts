import closeWithGrace from 'close-with-grace'
import { describeConfig, loadConfig, type Config } from './config.js'
import { buildApp } from './app.js'
import { cliAnswer } from './process/cli.js'

const cli = cliAnswer(process.argv.slice(2))
if (cli !== undefined) {
  ;(cli.code === 0 ? process.stdout : process.stderr).write(`${cli.text}\n`)
  process.exit(cli.code)
}

let config: Config
try {
  config = loadConfig()
} catch (err) {
  // loadConfig throws only ConfigError: one line naming the variable.
  console.error(`mj-gateway: ${(err as Error).message}`)
  process.exit(1)
}

let app: Awaited<ReturnType<typeof buildApp>>
try {
  app = await buildApp(config)
} catch (err) {
  // a surrounding that cannot work (DATA_DIR not writable, a ConfigError naming it): one line, as for a bad variable
  console.error(`mj-gateway: ${(err as Error).message}`)
  process.exit(1)
}
app.log.info({ config: describeConfig(config) }, 'effective configuration')

// Rotate team tokens without a restart: edit CLIENT_KEYS_FILE, then `kill -HUP <pid>`.
process.on('SIGHUP', () => {
  app.reloadClientKeys()
})

// SIGHUP reloads tokens (above), so it must not also close the gateway.
closeWithGrace({ delay: 10_000, skip: ['SIGHUP'] }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing: finishing in-flight requests')
  await app.close()
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.fatal({ err }, 'cannot listen')
  process.exit(1)
}
