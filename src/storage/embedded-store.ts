import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ConfigError } from '../config.js'
import type { OwnerRecords } from '../clients/ownership.js'
import type { QuotaStore } from '../clients/submit-quota.js'

const FILE_NAME = 'tenancy.sqlite'
/** expired rows are swept this often (reads ignore them anyway) */
const SWEEP_INTERVAL_MS = 3_600_000

/**
 * Owner records and daily submit counts when there is no REDIS_URL: SQLite (better-sqlite3) in DATA_DIR, so they
 * survive a restart. Namespaced by the upstream key's fingerprint like the cache (CONTRACT §5.7). Synchronous:
 * a lookup is a few microseconds, so the hit lane need not wait for it.
 */
export class EmbeddedStore implements OwnerRecords, QuotaStore {
  private readonly db: Database.Database
  private readonly getOwner: Database.Statement<[string, string, number], { owner: string }>
  private readonly putOwner: Database.Statement<[string, string, string, number]>
  private readonly bump: Database.Statement<[string, string, string, number], { count: number }>
  private readonly sweeper: NodeJS.Timeout

  /** Opens (creating) DATA_DIR/tenancy.sqlite; throws a one-line ConfigError naming DATA_DIR when it cannot be written. */
  constructor(
    dataDir: string,
    private readonly namespace: string
  ) {
    try {
      mkdirSync(dataDir, { recursive: true })
      this.db = new Database(join(dataDir, FILE_NAME))
      this.db.pragma('journal_mode = WAL')
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS owners (ns TEXT NOT NULL, id TEXT NOT NULL, owner TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (ns, id));
        CREATE TABLE IF NOT EXISTS submits (ns TEXT NOT NULL, client TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (ns, client, day));
      `)
      // a read-only directory or file shows up here at the latest (a write), not at the first submit
      this.db.prepare('DELETE FROM owners WHERE expires <= 0').run()
    } catch (err) {
      const e = err as { code?: unknown } // fs and SqliteError errors carry a code
      throw new ConfigError(`DATA_DIR: cannot write the embedded store in ${dataDir} (${String(e.code)})`)
    }
    this.getOwner = this.db.prepare('SELECT owner FROM owners WHERE ns = ? AND id = ? AND expires > ?')
    this.putOwner = this.db.prepare('INSERT OR REPLACE INTO owners (ns, id, owner, expires) VALUES (?, ?, ?, ?)')
    this.bump = this.db.prepare(
      `INSERT INTO submits (ns, client, day, count, expires) VALUES (?, ?, ?, 1, ?)
       ON CONFLICT (ns, client, day) DO UPDATE SET count = count + 1 RETURNING count`
    )
    this.sweep()
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref()
  }

  owners(ids: readonly string[]): Array<string | undefined> {
    const now = Date.now()
    return ids.map((id) => this.getOwner.get(this.namespace, id, now)?.owner)
  }

  /** first record wins: returns the owner already on record, undefined when this one was written */
  record(id: string, owner: string, ttlMs: number): string | undefined {
    // one write transaction (BEGIN IMMEDIATE): another process sharing DATA_DIR cannot record between the read and the write
    return this.db
      .transaction(() => {
        const now = Date.now()
        const earlier = this.getOwner.get(this.namespace, id, now)?.owner
        if (earlier === undefined) this.putOwner.run(this.namespace, id, owner, now + ttlMs)
        return earlier
      })
      .immediate()
  }

  increment(client: string, day: string, ttlMs: number): number {
    return (this.bump.get(this.namespace, client, day, Date.now() + ttlMs) as { count: number }).count
  }

  private sweep(): void {
    try {
      const now = Date.now()
      this.db.prepare('DELETE FROM owners WHERE expires <= ?').run(now)
      this.db.prepare('DELETE FROM submits WHERE expires <= ?').run(now)
      /* c8 ignore next 3 -- a database that failed after opening (disk gone): reads ignore expired rows anyway */
    } catch {
      // a sweep that fails is retried next time
    }
  }

  close(): void {
    clearInterval(this.sweeper)
    this.db.close()
  }
}
