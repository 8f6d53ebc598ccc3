import { InvalidOptionError, StoreUnavailableError } from '../errors.js'
import { MAX_FAMILIES_PER_USER, MAX_SOURCES_PER_ACCOUNT, type AuthStore, type RefreshFamily, type RevocationState, type RotateResult } from './types.js'

/**
 * What the PostgreSQL store needs of a connection pool: `pg`'s `Pool` (or `Client`) has it, and
 * so can a few lines around any other driver. A structural type, so that the package's
 * declarations never need `pg`'s types.
 */
export interface PostgresQueryable {
  /** Runs one statement; `values` fill its `$1`, `$2`, … parameters. */
  query: (text: string, values?: unknown[]) => Promise<{ rows: Array<Record<string, unknown>>, rowCount: number | null }>
}

/** Where the store's tables live. */
export interface PostgresStoreLocation {
  /** The schema of the tables; default `public`. Lower-case letters, digits and `_`, not starting with a digit. */
  schema?: string
  /** Put before every table name; default `fastify_token_auth_`. Lower-case letters, digits and `_`. */
  tablePrefix?: string
}

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions extends PostgresStoreLocation {
  /**
   * A `pg` Pool (or anything with its `query(text, values)`). The host owns it: the store never
   * connects, ends or listens to it. Give it an `error` listener (pg emits one when a backend of
   * an idle connection goes away, and an unheard `error` ends the process), and a
   * `connectionTimeoutMillis`, so that calls fail fast while PostgreSQL is away.
   */
  pool: PostgresQueryable
  /**
   * Milliseconds a store call may take before it counts as failed (503); default 1000. The
   * query itself is not cancelled: give the pool a `statement_timeout` too, so that PostgreSQL
   * stops working on it.
   */
  queryTimeout?: number
}

/** What `sweep` removed: expired rows of each table. */
export interface PostgresSweepResult {
  counters: number
  families: number
  revocations: number
  deniedTokens: number
  knownSources: number
  /** Refresh families whose access tokens were denied for reuse, past that time. */
  deniedFamilies: number
}

/** The PostgreSQL store: the AuthStore contract, and `sweep` for the expired rows. */
export interface PostgresStore extends AuthStore {
  /** As the contract says; always a promise here, the answer being across the network. */
  revocationState: (userKey: string, jti: string | undefined, now: number, familyId?: string) => Promise<RevocationState>
  /**
   * Deletes every row that has expired by `now` (default: the time of the call). Expired rows
   * never count as live whether or not they were swept; the sweep only gives their space back.
   * Schedule it (every few minutes is plenty); it is safe to run from many instances at once.
   */
  sweep: (now?: number) => Promise<PostgresSweepResult>
}

// PostgreSQL's NAMEDATALEN - 1: longer names are cut silently, so two could become one.
const MAX_IDENTIFIER = 63
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/
const PREFIX = /^[a-z_][a-z0-9_]*$|^$/
// The longest name the store adds to the prefix (an index's).
const LONGEST_NAME = 'denied_tokens_expires_at'

interface Tables {
  schema: string
  counters: string
  families: string
  revocations: string
  denied: string
  sources: string
  epoch: string
  deniedFamilies: string
  migrations: string
  /** An index's name (it lives in its table's schema, so it is not qualified). */
  index: (name: string) => string
}

/**
 * The tables' qualified, quoted names. Schema and prefix are checked against a strict pattern
 * before they are quoted: they are the only text the store ever puts into SQL; every value
 * travels as a parameter.
 */
function tablesOf (where: string, location: PostgresStoreLocation = {}): Tables {
  const schema = location.schema ?? 'public'
  const prefix = location.tablePrefix ?? 'fastify_token_auth_'
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema) || schema.length > MAX_IDENTIFIER) {
    throw new InvalidOptionError(`${where}: schema`, 'must be lower-case letters, digits and "_", not starting with a digit, at most 63 characters')
  }
  if (typeof prefix !== 'string' || !PREFIX.test(prefix) || prefix.length + LONGEST_NAME.length > MAX_IDENTIFIER) {
    throw new InvalidOptionError(`${where}: tablePrefix`, `must be lower-case letters, digits and "_", not starting with a digit, at most ${MAX_IDENTIFIER - LONGEST_NAME.length} characters`)
  }
  const table = (name: string): string => `"${schema}"."${prefix}${name}"`
  return {
    schema: `"${schema}"`,
    counters: table('counters'),
    families: table('families'),
    revocations: table('revocations'),
    denied: table('denied_tokens'),
    sources: table('known_sources'),
    epoch: table('revocation_epoch'),
    deniedFamilies: table('denied_families'),
    migrations: table('migrations'),
    index: (name) => `"${prefix}${name}"`
  }
}

/*
 * The migrations, in order; append, never edit one that has shipped. Each statement is
 * idempotent (IF NOT EXISTS), so running the list again on a migrated database changes nothing,
 * and each migration's id is recorded in the migrations table.
 *
 * Times are milliseconds since the epoch (bigint), the `now` every call passes in, so that
 * every instance of an app judges expiry on its own clock, as with the other stores.
 */
function migrations (t: Tables): Array<{ id: number, sql: string }> {
  return [{
    id: 1,
    sql: `
-- Login-failure and per-IP counters: hot, rewritten on every attempt, and worth nothing after a
-- crash (a lost count only forgives a few failures), so UNLOGGED: no write-ahead log, and so
-- no replication either. No index on expires_at: every write could then stay a HOT update.
CREATE UNLOGGED TABLE IF NOT EXISTS ${t.counters} (
  key text PRIMARY KEY,
  count integer NOT NULL,
  blocked_until bigint NOT NULL,
  expires_at bigint NOT NULL,
  -- What the last reserve answered: 0 when allowed, else the milliseconds to wait.
  retry_ms bigint NOT NULL DEFAULT 0
);
-- Refresh-token families (RFC 9700 §4.14.2): durable, so that a restart logs no one out.
-- idle_until is the end of the family: the idle deadline, never past expires_at.
CREATE TABLE IF NOT EXISTS ${t.families} (
  user_key text NOT NULL,
  id text NOT NULL,
  sub text NOT NULL,
  username text NOT NULL,
  client_id text NOT NULL,
  scope text[] NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  idle_until bigint NOT NULL,
  -- The hash of the current token; '' once the family was revoked for reuse.
  hash text NOT NULL,
  PRIMARY KEY (user_key, id)
);
CREATE INDEX IF NOT EXISTS ${t.index('families_idle_until')} ON ${t.families} (idle_until);
-- "Log out everywhere": access tokens of the user with an iat below revoked_before are revoked.
CREATE TABLE IF NOT EXISTS ${t.revocations} (
  user_key text PRIMARY KEY,
  revoked_before bigint NOT NULL,
  expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS ${t.index('revocations_expires_at')} ON ${t.revocations} (expires_at);
-- Single access tokens revoked before they expire (RFC 7009).
CREATE TABLE IF NOT EXISTS ${t.denied} (
  user_key text NOT NULL,
  jti text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (user_key, jti)
);
CREATE INDEX IF NOT EXISTS ${t.index('denied_tokens_expires_at')} ON ${t.denied} (expires_at);`
  }, {
    id: 2,
    sql: `
-- Where each account logged in from lately: the login throttle never refuses a known source for
-- failures made from elsewhere. Durable: a lost row would expose its owner to a lockout.
CREATE TABLE IF NOT EXISTS ${t.sources} (
  account text NOT NULL,
  source text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (account, source)
);
CREATE INDEX IF NOT EXISTS ${t.index('known_sources_expires_at')} ON ${t.sources} (expires_at);`
  }, {
    id: 3,
    sql: `
-- The store-wide revocation epoch (AuthStore.revocationEpoch): one row, never dropped, so it
-- only grows. "Log out everywhere" advances it and makes it the user's bound.
CREATE TABLE IF NOT EXISTS ${t.epoch} (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  value bigint NOT NULL
);
-- Bounds were an iat in seconds; they are an epoch (milliseconds) now.
UPDATE ${t.revocations} SET revoked_before = revoked_before * 1000 WHERE revoked_before > 0 AND revoked_before < 100000000000;
-- The latest end of a family created for the user (written by each login, under the row's
-- lock): a "log out everywhere" keeps its bound that long, so a family created by a login that
-- raced it stays dead (see families.epoch).
ALTER TABLE ${t.revocations} ADD COLUMN IF NOT EXISTS families_until bigint NOT NULL DEFAULT 0;
-- The token the last rotation replaced and when (a retry of it is no reuse within the grace);
-- the epoch the family's grant began in (a bound above it ends the family); what the last
-- rotate decided.
ALTER TABLE ${t.families} ADD COLUMN IF NOT EXISTS prev_hash text NOT NULL DEFAULT '';
ALTER TABLE ${t.families} ADD COLUMN IF NOT EXISTS replaced_at bigint NOT NULL DEFAULT 0;
ALTER TABLE ${t.families} ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE ${t.families} ADD COLUMN IF NOT EXISTS step text NOT NULL DEFAULT '';
-- Families revoked for reuse: their access tokens (claim sid) are denied until they expire.
CREATE TABLE IF NOT EXISTS ${t.deniedFamilies} (
  user_key text NOT NULL,
  id text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (user_key, id)
);
CREATE INDEX IF NOT EXISTS ${t.index('denied_fams_expires_at')} ON ${t.deniedFamilies} (expires_at);`
  }, {
    id: 4,
    sql: `
-- The family's own key, which its refresh tokens carry a MAC of: only a token the family issued
-- counts as reuse (RFC 9700 §4.14.2). '' for a family made before: it fails safe, any token of it
-- that is neither current nor the one its last rotation replaced being unknown.
ALTER TABLE ${t.families} ADD COLUMN IF NOT EXISTS token_key text NOT NULL DEFAULT '';`
  }]
}

// Any number, the same for every version of the plugin: migrations of one database run one at a time.
const MIGRATION_LOCK = 0x6a7761

/**
 * The SQL that creates (or brings up to date) the store's tables, for hosts whose migrations
 * run through a tool of their own (node-pg-migrate, Flyway, …). It is one script, to run in one
 * transaction; running it again changes nothing.
 */
export function postgresStoreMigrationSql (location: PostgresStoreLocation = {}): string {
  const t = tablesOf('postgresStoreMigrationSql', location)
  const list = migrations(t)
  return [
    // One migrator at a time; the lock ends with the transaction.
    `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK});`,
    `CREATE SCHEMA IF NOT EXISTS ${t.schema};`,
    `CREATE TABLE IF NOT EXISTS ${t.migrations} (id integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());`,
    ...list.map(({ id, sql }) => `${sql.trim()}\nINSERT INTO ${t.migrations} (id) VALUES (${id}) ON CONFLICT (id) DO NOTHING;`)
  ].join('\n')
}

/**
 * Creates the PostgreSQL store's tables, or brings them up to date; run it when the app starts
 * or deploys, before `createPostgresStore`. The store never creates a table by itself, at
 * request time or otherwise. Safe to run from many instances at once: they take turns.
 *
 * The script is sent as one query without parameters, which PostgreSQL runs as one transaction:
 * all of it applies, or none. A database on which every migration is recorded is not touched.
 */
export async function migratePostgresStore (pool: PostgresQueryable, location: PostgresStoreLocation = {}): Promise<void> {
  if (typeof pool?.query !== 'function') throw new InvalidOptionError('migratePostgresStore: pool', 'must be a pg Pool or Client (anything with query(text, values))')
  const t = tablesOf('migratePostgresStore', location)
  // An up-to-date database is left alone, not even locked: the script's ALTER TABLEs take an
  // ACCESS EXCLUSIVE lock before they find the column there, so at every start they would
  // queue behind any long read of the tables (a pg_dump, a report), and every store call
  // behind them. Only a start that brings a new migration waits for such a read.
  if (await isUpToDate(pool, t)) return
  await pool.query(postgresStoreMigrationSql(location))
}

/** Whether every migration is recorded in the migrations table (which may not exist yet). */
async function isUpToDate (pool: PostgresQueryable, t: Tables): Promise<boolean> {
  const ids = migrations(t).map(({ id }) => id)
  const { rows } = await pool.query('SELECT to_regclass($1::text) IS NOT NULL AS present', [t.migrations])
  if (rows[0]!.present !== true) return false
  const applied = await pool.query(`SELECT count(*)::integer AS n FROM ${t.migrations} WHERE id = ANY($1::integer[])`, [ids])
  return applied.rows[0]!.n === ids.length
}

/*
 * One statement per method, each atomic on its own: a single INSERT … ON CONFLICT or UPDATE
 * takes the row's lock, and a statement that waited for it sees the row as the other left it
 * (READ COMMITTED re-reads a row updated under it). No read-then-write, no transaction held
 * across round trips.
 */
function statements (t: Tables) {
  /**
   * reserve's decision, from a counter row `o` (count, blocked, expires) that is live or fresh:
   * the next (count, blocked_until, expires_at, retry_ms). Parameters: $2 limit, $3 windowMs,
   * $4 backoff maxMs (-1: a fixed window), $5 now. The same arithmetic as the memory store.
   */
  const reserveStep = (o: string): string => `
    SELECT
      CASE WHEN d.refused THEN o.count ELSE o.count + 1 END,
      CASE WHEN d.refused OR $4::bigint < 0 THEN o.blocked
           WHEN o.count + 1 >= $2::bigint THEN $5::bigint + least(1000 * power(2, least(o.count + 1 - $2::bigint, 30))::bigint, $4::bigint)
           ELSE 0 END,
      CASE WHEN d.refused OR $4::bigint < 0 THEN o.expires
           WHEN o.count + 1 >= $2::bigint THEN $5::bigint + least(1000 * power(2, least(o.count + 1 - $2::bigint, 30))::bigint, $4::bigint) + $3::bigint
           ELSE $5::bigint + $3::bigint END,
      CASE WHEN o.blocked > $5::bigint THEN o.blocked - $5::bigint
           WHEN d.refused THEN o.expires - $5::bigint
           ELSE 0 END
    FROM (${o}) AS o (count, blocked, expires)
    CROSS JOIN LATERAL (SELECT o.blocked > $5::bigint OR ($4::bigint < 0 AND o.count >= $2::bigint) AS refused) AS d`

  /** A condition on family row `f`: no live bound of its user has passed the epoch it was created in. */
  const liveByBound = (now: string): string =>
    `NOT EXISTS (SELECT 1 FROM ${t.revocations} AS rb WHERE rb.user_key = f.user_key AND rb.expires_at > ${now}::bigint AND rb.revoked_before > f.epoch)`

  return {
    // A key seen for the first time starts from a fresh row; a known one from its row, or from
    // a fresh one when its window is over.
    reserve: `
      INSERT INTO ${t.counters} AS c (key, count, blocked_until, expires_at, retry_ms)
      SELECT $1, s.* FROM (${reserveStep('VALUES (0, 0::bigint, $5::bigint + $3::bigint)')}) AS s
      ON CONFLICT (key) DO UPDATE SET (count, blocked_until, expires_at, retry_ms) = (${reserveStep(`
        SELECT CASE WHEN c.expires_at > $5::bigint THEN c.count ELSE 0 END,
               CASE WHEN c.expires_at > $5::bigint THEN c.blocked_until ELSE 0 END,
               CASE WHEN c.expires_at > $5::bigint THEN c.expires_at ELSE $5::bigint + $3::bigint END`)})
      RETURNING retry_ms`,
    // Back to nothing counted and no wait, the row decides nothing: it goes, as in the memory
    // store, and the next attempt starts a window of its own. Both parts see one snapshot, so
    // the UPDATE skips a row the DELETE took.
    release: `WITH gone AS (DELETE FROM ${t.counters} WHERE key = $1 AND count = 1 AND blocked_until = 0 RETURNING key)
      UPDATE ${t.counters} SET count = count - 1 WHERE key = $1 AND count > 0 AND NOT EXISTS (SELECT FROM gone)`,
    reset: `DELETE FROM ${t.counters} WHERE key = $1`,
    hit: `
      INSERT INTO ${t.counters} AS c (key, count, blocked_until, expires_at)
      VALUES ($1, 1, 0, $3::bigint + $2::bigint)
      ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN c.expires_at > $3::bigint THEN c.count + 1 ELSE 1 END,
        blocked_until = 0,
        expires_at = CASE WHEN c.expires_at > $3::bigint THEN c.expires_at ELSE $3::bigint + $2::bigint END
      RETURNING count, expires_at - $3::bigint AS ttl_ms`,

    // The user's bound row is upserted first, under its lock: a revokeUser that committed
    // before is seen (ON CONFLICT reads the latest row), and one that runs after waits for this
    // statement, then keeps its bound until this family would end (families_until), so a
    // family its DELETE could not see stays dead by its epoch. Nothing is created, and no row
    // returned, when the bound has passed the grant's epoch ($12). The user keeps at most $14
    // families: when one is created, all but the $14 - 1 others with the latest idle deadline
    // end (dead rows of the user too). The statement's snapshot does not see a family another
    // login creates at the same moment, so racing logins may leave a few more, until the next.
    createFamily: `
      WITH b AS (
        INSERT INTO ${t.revocations} AS r (user_key, revoked_before, expires_at, families_until)
        VALUES ($1, 0, 0, $8::bigint)
        ON CONFLICT (user_key) DO UPDATE SET families_until = greatest(r.families_until, EXCLUDED.families_until)
        RETURNING CASE WHEN r.expires_at > $10::bigint THEN r.revoked_before ELSE 0 END AS bound
      ), created AS (
        INSERT INTO ${t.families} AS f (user_key, id, sub, username, client_id, scope, created_at, expires_at, idle_until, hash, epoch, token_key)
        SELECT $1, $2, $3, $4, $5, $6::text[], $7::bigint, $8::bigint, least($10::bigint + $11::bigint, $8::bigint), $9, $12::bigint, $13
        FROM b WHERE b.bound <= $12::bigint
        ON CONFLICT (user_key, id) DO UPDATE SET sub = EXCLUDED.sub, username = EXCLUDED.username, client_id = EXCLUDED.client_id,
          scope = EXCLUDED.scope, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
          idle_until = EXCLUDED.idle_until, hash = EXCLUDED.hash, epoch = EXCLUDED.epoch, prev_hash = '', replaced_at = 0, step = '',
          token_key = EXCLUDED.token_key
        RETURNING 1 AS created
      ), capped AS (
        DELETE FROM ${t.families} AS o WHERE o.user_key = $1 AND o.id <> $2 AND EXISTS (SELECT 1 FROM created)
          AND o.id NOT IN (SELECT k.id FROM ${t.families} AS k WHERE k.user_key = $1 AND k.id <> $2 AND k.idle_until > $10::bigint
                           ORDER BY k.idle_until DESC, k.id DESC LIMIT $14::integer - 1)
      )
      SELECT created FROM created`,
    // Every read filters on the end of the family, and on the user's bound: an expired row, or
    // one from before a "log out everywhere", is never live, swept or not.
    getFamily: `
      SELECT sub, username, client_id, scope, created_at, expires_at, hash, prev_hash, replaced_at, token_key
      FROM ${t.families} AS f WHERE user_key = $1 AND id = $2 AND idle_until > $3::bigint AND ${liveByBound('$3')}`,
    // One UPDATE decides and writes: of two rotations of one token, the second waits for the
    // row, then sees the first one's hash: a retry within the grace ($7), else reuse (RFC 9700
    // §4.14.2). A family revoked for reuse keeps its row with no current hash until it would
    // have ended, so every later presentation of one of its tokens is reuse too; and the same
    // statement denies its access tokens for $8 ms. A grace of 0 is never a retry, even for a
    // request whose `now` was read before the rotation's.
    rotate: `
      WITH u AS (
        UPDATE ${t.families} AS f SET
          step = CASE WHEN (f.hash <> '' AND f.hash = $3) THEN 'rotated' WHEN (f.hash <> '' AND f.prev_hash = $3 AND $7::bigint > 0 AND $6::bigint < f.replaced_at + $7::bigint) THEN 'retried' ELSE 'reused' END,
          hash = CASE WHEN (f.hash <> '' AND f.hash = $3) OR (f.hash <> '' AND f.prev_hash = $3 AND $7::bigint > 0 AND $6::bigint < f.replaced_at + $7::bigint) THEN $4 ELSE '' END,
          prev_hash = CASE WHEN (f.hash <> '' AND f.hash = $3) THEN $3 ELSE f.prev_hash END,
          replaced_at = CASE WHEN (f.hash <> '' AND f.hash = $3) THEN $6::bigint ELSE f.replaced_at END,
          idle_until = CASE WHEN (f.hash <> '' AND f.hash = $3) OR (f.hash <> '' AND f.prev_hash = $3 AND $7::bigint > 0 AND $6::bigint < f.replaced_at + $7::bigint) THEN least($6::bigint + $5::bigint, f.expires_at) ELSE f.idle_until END
        WHERE user_key = $1 AND id = $2 AND idle_until > $6::bigint AND ${liveByBound('$6')}
        RETURNING f.step
      ), d AS (
        INSERT INTO ${t.deniedFamilies} AS d (user_key, id, expires_at)
        SELECT $1, $2, $6::bigint + $8::bigint FROM u WHERE u.step = 'reused' AND $8::bigint > 0
        ON CONFLICT (user_key, id) DO UPDATE SET expires_at = greatest(d.expires_at, EXCLUDED.expires_at)
      )
      SELECT step FROM u`,
    // A family that existed has its access tokens denied for $3 ms (none when 0), in the same statement.
    revokeFamily: `
      WITH f AS (DELETE FROM ${t.families} WHERE user_key = $1 AND id = $2 RETURNING id), d AS (
        INSERT INTO ${t.deniedFamilies} AS d (user_key, id, expires_at)
        SELECT $1, $2, $4::bigint + $3::bigint FROM f WHERE $3::bigint > 0
        ON CONFLICT (user_key, id) DO UPDATE SET expires_at = greatest(d.expires_at, EXCLUDED.expires_at)
      )
      SELECT count(*) AS ended FROM f`,
    revocationEpoch: `SELECT value FROM ${t.epoch}`,
    // The epoch advances (to now, or one past its value when that is not less), the user's
    // families end and the bound is set, in one statement, so no one sees the families gone and
    // the bound not yet set. The bound lives at least as long as any family a racing login made.
    revokeUser: `
      WITH e AS (
        INSERT INTO ${t.epoch} AS e (id, value) VALUES (true, $3::bigint)
        ON CONFLICT (id) DO UPDATE SET value = greatest(e.value + 1, $3::bigint)
        RETURNING value
      ), ended AS (DELETE FROM ${t.families} WHERE user_key = $1)
      INSERT INTO ${t.revocations} AS r (user_key, revoked_before, expires_at, families_until)
      SELECT $1, e.value, $3::bigint + $2::bigint, 0 FROM e
      ON CONFLICT (user_key) DO UPDATE SET
        revoked_before = greatest(CASE WHEN r.expires_at > $3::bigint THEN r.revoked_before ELSE 0 END, EXCLUDED.revoked_before),
        expires_at = greatest(r.expires_at, EXCLUDED.expires_at, r.families_until)`,
    // The account keeps its $5 most recently remembered sources: this one, and of the others the
    // $5 - 1 that end last (the DELETE does not see the row the INSERT wrote: one snapshot).
    rememberSource: `
      WITH remembered AS (
        INSERT INTO ${t.sources} (account, source, expires_at) VALUES ($1, $2, $4::bigint + $3::bigint)
        ON CONFLICT (account, source) DO UPDATE SET expires_at = EXCLUDED.expires_at)
      DELETE FROM ${t.sources} WHERE account = $1 AND source IN (
        SELECT source FROM ${t.sources} WHERE account = $1 AND source <> $2
        ORDER BY expires_at DESC, source OFFSET $5::integer - 1)`,
    isKnownSource: `SELECT 1 FROM ${t.sources} WHERE account = $1 AND source = $2 AND expires_at > $3::bigint`,
    revokeAccessToken: `
      INSERT INTO ${t.denied} AS d (user_key, jti, expires_at) VALUES ($1, $2, $4::bigint + $3::bigint)
      ON CONFLICT (user_key, jti) DO UPDATE SET expires_at = greatest(d.expires_at, EXCLUDED.expires_at)`,
    // One round trip for every answer: asked on every authenticated request.
    revocationState: `
      SELECT
        (SELECT revoked_before FROM ${t.revocations} WHERE user_key = $1 AND expires_at > $3::bigint) AS revoked_before,
        EXISTS (SELECT 1 FROM ${t.denied} WHERE user_key = $1 AND jti = $2 AND expires_at > $3::bigint) AS denied,
        EXISTS (SELECT 1 FROM ${t.deniedFamilies} WHERE user_key = $1 AND id = $4 AND expires_at > $3::bigint) AS family_denied`,
    sweep: `
      WITH c AS (DELETE FROM ${t.counters} WHERE expires_at <= $1::bigint RETURNING 1),
           f AS (DELETE FROM ${t.families} WHERE idle_until <= $1::bigint RETURNING 1),
           r AS (DELETE FROM ${t.revocations} WHERE expires_at <= $1::bigint AND families_until <= $1::bigint RETURNING 1),
           d AS (DELETE FROM ${t.denied} WHERE expires_at <= $1::bigint RETURNING 1),
           s AS (DELETE FROM ${t.sources} WHERE expires_at <= $1::bigint RETURNING 1),
           df AS (DELETE FROM ${t.deniedFamilies} WHERE expires_at <= $1::bigint RETURNING 1)
      SELECT (SELECT count(*) FROM c) AS counters, (SELECT count(*) FROM f) AS families,
             (SELECT count(*) FROM r) AS revocations, (SELECT count(*) FROM d) AS denied_tokens,
             (SELECT count(*) FROM s) AS known_sources, (SELECT count(*) FROM df) AS denied_families`
  }
}

/**
 * A store in PostgreSQL, shared by every instance of an app: refresh-token families and
 * revocations in durable tables (a restart of PostgreSQL logs no one out), login and per-IP
 * counters in an UNLOGGED one. Every method is one parameterised statement, atomic on its own;
 * every call fails within `queryTimeout` with `FST_TOKEN_AUTH_STORE_UNAVAILABLE`, which the
 * plugin answers as 503, so an outage never hangs or crashes a request.
 *
 * The tables must exist first: `migratePostgresStore(pool, { schema, tablePrefix })`.
 * Expired rows never count; `store.sweep()` deletes them, on a schedule the host chooses.
 */
export function createPostgresStore (options: PostgresStoreOptions): PostgresStore {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('createPostgresStore', 'needs an options object { pool, schema?, tablePrefix?, queryTimeout? }')
  const { pool } = options
  if (typeof pool?.query !== 'function') throw new InvalidOptionError('createPostgresStore: pool', 'must be a pg Pool or Client (anything with query(text, values))')
  const queryTimeout = options.queryTimeout ?? 1000
  if (!Number.isInteger(queryTimeout) || queryTimeout < 1) {
    throw new InvalidOptionError('createPostgresStore: queryTimeout', 'must be a whole number of milliseconds, at least 1')
  }
  const sql = statements(tablesOf('createPostgresStore', options))

  /** Runs one statement, failing within `queryTimeout` with a StoreUnavailableError. */
  async function query (text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>>, rowCount: number | null }> {
    let timer: NodeJS.Timeout | undefined
    // pool.query may throw rather than reject (a driver's argument checks); both count as failed.
    const pending = (async () => await pool.query(text, values))()
    // The race below may settle first; this one must never become an unhandled rejection.
    pending.catch(() => {})
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${queryTimeout} ms`)), queryTimeout)
    })
    return await Promise.race([pending, timeout])
      .catch((cause: unknown) => { throw new StoreUnavailableError({ cause }) })
      .finally(() => clearTimeout(timer))
  }

  // bigint columns come back as strings from pg (they may pass 2^53; ours never do), and a
  // missing bound as null, which is 0 here.
  const int = (value: unknown): number => Number(value)

  return {
    async reserve (key, rule, now) {
      const { rows } = await query(sql.reserve, [key, rule.limit, rule.windowMs, rule.backoff?.maxMs ?? -1, now])
      const retryAfterMs = int(rows[0]!.retry_ms)
      return { allowed: retryAfterMs === 0, retryAfterMs }
    },
    async release (key) {
      await query(sql.release, [key])
    },
    async reset (key) {
      await query(sql.reset, [key])
    },
    async hit (key, windowMs, now) {
      const { rows } = await query(sql.hit, [key, windowMs, now])
      return { count: int(rows[0]!.count), ttlMs: int(rows[0]!.ttl_ms) }
    },

    async rememberSource (account, source, ttlMs, now) {
      await query(sql.rememberSource, [account, source, Math.max(1, ttlMs), now, MAX_SOURCES_PER_ACCOUNT])
    },
    async isKnownSource (account, source, now) {
      const { rows } = await query(sql.isKnownSource, [account, source, now])
      return rows.length > 0
    },

    async createRefreshFamily (family, tokenHash, idleMs, now, epoch) {
      const { rows } = await query(sql.createFamily, [family.userKey, family.id, family.sub, family.username, family.clientId,
        family.scope, family.createdAt, family.expiresAt, tokenHash, now, idleMs, epoch, family.tokenKey, MAX_FAMILIES_PER_USER])
      return rows.length > 0
    },
    async getRefreshFamily (userKey, familyId, tokenHash, now) {
      const { rows } = await query(sql.getFamily, [userKey, familyId, now])
      const row = rows[0]
      if (row === undefined) return undefined
      const family: RefreshFamily = {
        id: familyId,
        userKey,
        sub: row.sub as string,
        username: row.username as string,
        clientId: row.client_id as string,
        scope: row.scope as string[],
        createdAt: int(row.created_at),
        expiresAt: int(row.expires_at),
        tokenKey: row.token_key as string
      }
      const found = { family, current: row.hash !== '' && row.hash === tokenHash }
      return row.hash !== '' && row.prev_hash === tokenHash ? { ...found, replacedAt: int(row.replaced_at) } : found
    },
    async rotateRefreshToken (userKey, familyId, tokenHash, nextHash, { idleMs, graceMs, denyMs }, now) {
      const { rows } = await query(sql.rotate, [userKey, familyId, tokenHash, nextHash, idleMs, now, graceMs, denyMs])
      if (rows[0] === undefined) return 'invalid'
      return rows[0].step as RotateResult
    },
    async revokeRefreshFamily (userKey, familyId, denyMs, now) {
      const { rows } = await query(sql.revokeFamily, [userKey, familyId, denyMs, now])
      return int(rows[0]!.ended) > 0
    },
    async revocationEpoch () {
      const { rows } = await query(sql.revocationEpoch, [])
      return rows[0] === undefined ? 0 : int(rows[0].value)
    },
    async revokeUser (userKey, ttlMs, now) {
      await query(sql.revokeUser, [userKey, Math.max(1, ttlMs), now])
    },
    async revokeAccessToken (userKey, jti, ttlMs, now) {
      await query(sql.revokeAccessToken, [userKey, jti, Math.max(1, ttlMs), now])
    },
    async revocationState (userKey, jti, now, familyId) {
      const { rows } = await query(sql.revocationState, [userKey, jti ?? null, now, familyId ?? null])
      return { revokedBefore: int(rows[0]!.revoked_before), jtiDenied: rows[0]!.denied === true, familyDenied: rows[0]!.family_denied === true }
    },

    async sweep (now = Date.now()) {
      const { rows } = await query(sql.sweep, [now])
      const row = rows[0]!
      return { counters: int(row.counters), families: int(row.families), revocations: int(row.revocations), deniedTokens: int(row.denied_tokens), knownSources: int(row.known_sources), deniedFamilies: int(row.denied_families) }
    }
  }
}
