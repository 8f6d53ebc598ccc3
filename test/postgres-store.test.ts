import t from 'tap'
import { createPostgresStore, migratePostgresStore, postgresStoreMigrationSql, type PostgresQueryable, type RotateRules } from '../lib/index.js'
import { family } from './store-contract.js'
import { freePort, NO_POSTGRES, postgresPool, testSchema } from './helper.js'

/*
 * What the PostgreSQL store does beyond the store contract (test/store-contract.test.ts runs
 * that against it): its options, its migration, identifiers that cannot inject SQL, the sweep
 * of expired rows, and every failure answered as StoreUnavailableError.
 */

const T0 = 1_700_000_000_000
const MINUTE = 60_000
/** Rotation rules with neither retry grace nor family deny, lasting `idleMs`. */
const rules = (idleMs: number, graceMs = 0, denyMs = 0): RotateRules => ({ idleMs, graceMs, denyMs })
const UNAVAILABLE = { code: 'FST_TOKEN_AUTH_STORE_UNAVAILABLE', statusCode: 503 }

/** A pool that must never be reached: the options are refused before it could be. */
const unreachable: PostgresQueryable = { query: async () => { throw new Error('not reached') } }

t.test('options are checked when the store is made, with the option named', async (t) => {
  const invalid = { code: 'FST_TOKEN_AUTH_INVALID_OPTION' }
  t.throws(() => createPostgresStore(undefined as never), invalid)
  t.throws(() => createPostgresStore({} as never), { ...invalid, message: /createPostgresStore: pool/ })
  t.throws(() => createPostgresStore({ pool: { query: 'no' } as never }), { message: /pool/ })
  for (const schema of ['', 'Public', '1abc', 'a-b', 'x"; DROP TABLE users; --', 'a b', 'é', 'a'.repeat(64), 42]) {
    t.throws(() => createPostgresStore({ pool: unreachable, schema: schema as string }), { ...invalid, message: /schema/ }, `schema ${JSON.stringify(schema)}`)
  }
  for (const tablePrefix of ['Fja_', '9_', 'a"b', 'a.b', 'x'.repeat(40), 42]) {
    t.throws(() => createPostgresStore({ pool: unreachable, tablePrefix: tablePrefix as string }), { ...invalid, message: /tablePrefix/ }, `tablePrefix ${JSON.stringify(tablePrefix)}`)
  }
  for (const queryTimeout of [0, -1, 1.5, Number.NaN, '100']) {
    t.throws(() => createPostgresStore({ pool: unreachable, queryTimeout: queryTimeout as number }), { ...invalid, message: /queryTimeout/ })
  }
  t.ok(createPostgresStore({ pool: unreachable, schema: 'a'.repeat(63), tablePrefix: '' }), 'the longest schema, and no prefix')
  t.ok(createPostgresStore({ pool: unreachable, tablePrefix: 'p'.repeat(39) }), 'the longest prefix')
  await t.rejects(migratePostgresStore({} as never), { ...invalid, message: /migratePostgresStore: pool/ })
  t.throws(() => postgresStoreMigrationSql({ schema: 'bad;' }), { ...invalid, message: /postgresStoreMigrationSql: schema/ })
})

t.test('the migration SQL names only the checked, quoted schema and prefix', async (t) => {
  const sql = postgresStoreMigrationSql({ schema: 'auth', tablePrefix: 'fja_' })
  t.match(sql, /CREATE UNLOGGED TABLE IF NOT EXISTS "auth"\."fja_counters"/)
  t.match(sql, /CREATE TABLE IF NOT EXISTS "auth"\."fja_families"/)
  t.notMatch(sql, /fastify_token_auth_/)
  t.match(postgresStoreMigrationSql(), /"public"\."fastify_token_auth_families"/, 'defaults: schema public, prefix fastify_token_auth_')
})

t.test('a store call that fails, throws, or takes too long rejects with StoreUnavailableError', async (t) => {
  const cause = new Error('connection terminated')
  const failing = createPostgresStore({ pool: { query: async () => { throw cause } } })
  await t.rejects(failing.reserve('k', { limit: 1, windowMs: MINUTE }, T0), UNAVAILABLE)
  const error = await failing.hit('k', MINUTE, T0).catch((e: unknown) => e) as Error
  t.equal(error.cause, cause, 'the cause is kept for the logs')
  const throwing = createPostgresStore({ pool: { query: () => { throw new TypeError('a driver that throws') } } })
  await t.rejects(throwing.reset('k'), UNAVAILABLE)
  const hanging = createPostgresStore({ pool: { query: async () => await new Promise(() => {}) }, queryTimeout: 50 })
  const started = Date.now()
  await t.rejects(hanging.revocationState('u', 'j', T0), { ...UNAVAILABLE, cause: { message: 'no answer within 50 ms' } })
  t.ok(Date.now() - started < 1000, 'within the timeout')
})

t.test('PostgreSQL away: every method rejects with StoreUnavailableError', async (t) => {
  // A port that was free a moment ago: nothing answers there.
  const port = await freePort()
  const pool = postgresPool(t, { connectionString: `postgres://postgres@127.0.0.1:${port}/test`, connectionTimeoutMillis: 500 })
  const store = createPostgresStore({ pool, queryTimeout: 2000 })
  const f = family()
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['reserve', () => store.reserve('k', { limit: 1, windowMs: MINUTE }, T0)],
    ['release', () => store.release('k')],
    ['reset', () => store.reset('k')],
    ['hit', () => store.hit('k', MINUTE, T0)],
    ['createRefreshFamily', () => store.createRefreshFamily(f, 'h', MINUTE, T0, 0)],
    ['getRefreshFamily', () => store.getRefreshFamily(f.userKey, f.id, 'h', T0)],
    ['rotateRefreshToken', () => store.rotateRefreshToken(f.userKey, f.id, 'h', 'h2', rules(MINUTE), T0)],
    ['revokeRefreshFamily', () => store.revokeRefreshFamily(f.userKey, f.id, 0, T0)],
    ['revokeUser', () => store.revokeUser(f.userKey, MINUTE, T0)],
    ['revokeAccessToken', () => store.revokeAccessToken(f.userKey, 'j', MINUTE, T0)],
    ['revocationEpoch', async () => await store.revocationEpoch()],
    ['revocationState', async () => await store.revocationState(f.userKey, 'j', T0)],
    ['sweep', () => store.sweep()]
  ]
  for (const [name, call] of calls) await t.rejects(call(), { ...UNAVAILABLE, cause: { code: 'ECONNREFUSED' } }, name)
})

t.test('against a real PostgreSQL', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)

  t.test('the migration: durable session tables, UNLOGGED counters, recorded; running it again changes nothing', async (t) => {
    const schema = await testSchema(t, pool)
    const tables = await pool.query<{ relname: string, relpersistence: string }>(
      `SELECT c.relname, c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname COLLATE "C"`, [schema])
    t.same(tables.rows, [
      { relname: 'fastify_token_auth_counters', relpersistence: 'u' },
      { relname: 'fastify_token_auth_denied_families', relpersistence: 'p' },
      { relname: 'fastify_token_auth_denied_tokens', relpersistence: 'p' },
      { relname: 'fastify_token_auth_families', relpersistence: 'p' },
      { relname: 'fastify_token_auth_known_sources', relpersistence: 'p' },
      { relname: 'fastify_token_auth_migrations', relpersistence: 'p' },
      { relname: 'fastify_token_auth_revocation_epoch', relpersistence: 'p' },
      { relname: 'fastify_token_auth_revocations', relpersistence: 'p' }
    ], 'counters are UNLOGGED; families, revocations, the epoch and known sources are durable')
    const store = createPostgresStore({ pool, schema })
    const f = family()
    await store.createRefreshFamily(f, 'h', MINUTE, T0, 0)
    // Five instances starting at once: they take turns on the advisory lock.
    await Promise.all(Array.from({ length: 5 }, () => migratePostgresStore(pool, { schema })))
    t.ok(await store.getRefreshFamily(f.userKey, f.id, 'h', T0), 'the data survived')
    const applied = await pool.query(`SELECT id FROM "${schema}".fastify_token_auth_migrations`)
    t.same(applied.rows.map((row) => row.id).sort(), [1, 2, 3, 4])
  })

  t.test('starting again on an up-to-date database takes no lock: a long read of the tables holds up nothing', async (t) => {
    const schema = await testSchema(t, pool)
    const store = createPostgresStore({ pool, schema, queryTimeout: 1000 })
    const f = family()
    await store.createRefreshFamily(f, 'h', MINUTE, T0, 0)
    // A report (or pg_dump) reading the tables in a long transaction.
    const reader = await pool.connect()
    t.teardown(() => reader.release())
    await reader.query('BEGIN')
    await reader.query(`SELECT count(*) FROM "${schema}".fastify_token_auth_families, "${schema}".fastify_token_auth_revocations`)
    try {
      const migrated = migratePostgresStore(pool, { schema }).then(() => 'done')
      const outcome = await Promise.race([migrated, new Promise((resolve) => setTimeout(resolve, 1500, 'waiting'))])
      t.equal(outcome, 'done', 'the migration did not queue behind the read')
      t.ok(await store.getRefreshFamily(f.userKey, f.id, 'h', T0), 'and store calls go on')
      t.same(await store.revocationState(f.userKey, 'j', T0), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
    } finally {
      await reader.query('COMMIT')
    }
  })

  t.test('a family made before migration 4 comes back with no tokenKey, and a new one with its own', async (t) => {
    const schema = await testSchema(t, pool)
    const families = `"${schema}".fastify_token_auth_families`
    // The tables as migrations 1 to 3 left them, holding a family of that version.
    await pool.query(`ALTER TABLE ${families} DROP COLUMN token_key`)
    await pool.query(`DELETE FROM "${schema}".fastify_token_auth_migrations WHERE id = 4`)
    await pool.query(`INSERT INTO ${families} (user_key, id, sub, username, client_id, scope, created_at, expires_at, idle_until, hash)
      VALUES ('userKeyOldAAAAAAAAAAAA', 'old', 'user-1', 'user1', 'public', '{}', $1, $2, $2, 'h')`, [T0, T0 + MINUTE])
    await migratePostgresStore(pool, { schema })
    const store = createPostgresStore({ pool, schema })
    t.equal((await store.getRefreshFamily('userKeyOldAAAAAAAAAAAA', 'old', 'h', T0))?.family.tokenKey, '', 'none: it fails safe')
    const f = family()
    await store.createRefreshFamily(f, 'h', MINUTE, T0, 0)
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'h', T0))?.family.tokenKey, f.tokenKey)
  })

  t.test('the store never creates its tables: without the migration, every call is unavailable', async (t) => {
    const schema = `fja_test_unmigrated_${process.pid}`
    const store = createPostgresStore({ pool, schema })
    await t.rejects(store.reserve('k', { limit: 1, windowMs: MINUTE }, T0), { ...UNAVAILABLE, cause: { code: '42P01' } }, 'no such table')
    const found = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
    t.equal(found.rowCount, 0, 'and none was made')
  })

  t.test('a schema and a prefix of their own keep two stores apart in one database', async (t) => {
    const schema = await testSchema(t, pool)
    await migratePostgresStore(pool, { schema, tablePrefix: 'other_' })
    const one = createPostgresStore({ pool, schema })
    const two = createPostgresStore({ pool, schema, tablePrefix: 'other_' })
    await one.hit('ip', MINUTE, T0)
    t.same(await two.hit('ip', MINUTE, T0), { count: 1, ttlMs: MINUTE })
  })

  t.test('values travel as parameters: quotes, backslashes and SQL come back as they went in', async (t) => {
    const schema = await testSchema(t, pool)
    const store = createPostgresStore({ pool, schema })
    const nasty = 'Robert\'); DROP TABLE fastify_token_auth_families; -- \\ "$1" \u00e9'
    const f = family(`user'key"${nasty}`, { sub: nasty, username: nasty, clientId: nasty, scope: ['a', 'b"c', 'd\'e', '{f,g}'] })
    await store.createRefreshFamily(f, nasty, MINUTE, T0, 0)
    t.same(await store.getRefreshFamily(f.userKey, f.id, nasty, T0), { family: f, current: true })
    t.same(await store.reserve(nasty, { limit: 1, windowMs: MINUTE }, T0), { allowed: true, retryAfterMs: 0 })
    t.equal((await store.reserve(nasty, { limit: 1, windowMs: MINUTE }, T0)).allowed, false)
    await store.revokeAccessToken(f.userKey, nasty, MINUTE, T0)
    t.same(await store.revocationState(f.userKey, nasty, T0), { revokedBefore: 0, jtiDenied: true, familyDenied: false })
  })

  t.test('expired rows never count as live, and sweep() removes them, only them', async (t) => {
    const schema = await testSchema(t, pool)
    const store = createPostgresStore({ pool, schema })
    const count = async (table: string): Promise<number> =>
      Number((await pool.query(`SELECT count(*) AS n FROM "${schema}".fastify_token_auth_${table}`)).rows[0].n)

    const short = family('userKeyShortAAAAAAAAAA')
    const long = family('userKeyLongAAAAAAAAAAA')
    await store.createRefreshFamily(short, 'h', MINUTE, T0, 0)
    await store.createRefreshFamily(long, 'h', 30 * MINUTE, T0, 0)
    await store.hit('ip-short', MINUTE, T0)
    await store.hit('ip-long', 30 * MINUTE, T0)
    // The epoch advances to T0, then one past it.
    await store.revokeUser('userKeyGoneAAAAAAAAAAA', MINUTE, T0)
    await store.revokeUser('userKeyStaysAAAAAAAAAA', 30 * MINUTE, T0)
    await store.revokeAccessToken('userKeyLongAAAAAAAAAAA', 'short', MINUTE, T0)
    await store.revokeAccessToken('userKeyLongAAAAAAAAAAA', 'long', 30 * MINUTE, T0)
    await store.rememberSource('login:alice', 'short', MINUTE, T0)
    await store.rememberSource('login:alice', 'long', 30 * MINUTE, T0)

    // Past the short rows' end and before the sweep: none of them counts.
    const later = T0 + 2 * MINUTE
    t.equal(await store.getRefreshFamily(short.userKey, short.id, 'h', later), undefined)
    t.equal(await store.rotateRefreshToken(short.userKey, short.id, 'h', 'h2', rules(MINUTE), later), 'invalid')
    t.same(await store.revocationState('userKeyGoneAAAAAAAAAAA', undefined, later), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
    t.same(await store.revocationState('userKeyLongAAAAAAAAAAA', 'short', later), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
    t.same(await store.revocationState('userKeyLongAAAAAAAAAAA', 'long', later), { revokedBefore: 0, jtiDenied: true, familyDenied: false })
    t.equal(await store.isKnownSource('login:alice', 'short', later), false)
    t.equal(await store.isKnownSource('login:alice', 'long', later), true)
    t.equal(await count('families'), 2, 'the expired rows are still there')

    t.same(await store.sweep(later), { counters: 1, families: 1, revocations: 1, deniedTokens: 1, knownSources: 1, deniedFamilies: 0 })
    // The revocation rows of the two families' users stay until those families would have
    // ended (families_until): a "log out everywhere" keeps its bound that long.
    t.same([await count('counters'), await count('families'), await count('revocations'), await count('denied_tokens'), await count('known_sources')],
      [1, 1, 3, 1, 1], 'the live rows stay')
    t.ok(await store.getRefreshFamily(long.userKey, long.id, 'h', later))
    t.same(await store.hit('ip-long', 30 * MINUTE, later), { count: 2, ttlMs: 28 * MINUTE })
    t.same(await store.revocationState('userKeyStaysAAAAAAAAAA', undefined, later), { revokedBefore: T0 + 1, jtiDenied: false, familyDenied: false })
    t.same(await store.sweep(later), { counters: 0, families: 0, revocations: 0, deniedTokens: 0, knownSources: 0, deniedFamilies: 0 }, 'a second sweep finds nothing')
    t.same(await store.sweep(), { counters: 1, families: 1, revocations: 3, deniedTokens: 1, knownSources: 1, deniedFamilies: 0 }, 'by default, expired by now: T0 is long past')
  })

  t.test('a revoked-for-reuse family is never current, whatever hash is presented', async (t) => {
    const schema = await testSchema(t, pool)
    const store = createPostgresStore({ pool, schema })
    const f = family()
    await store.createRefreshFamily(f, 'h1', MINUTE, T0, 0)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'old', 'h2', rules(MINUTE), T0), 'reused')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, '', T0))?.current, false, 'not even the empty hash it keeps')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, '', 'h3', rules(MINUTE), T0), 'reused')
  })

  t.test('a timed-out call answers at once, and the pool serves the next call', async (t) => {
    const schema = await testSchema(t, pool)
    const store = createPostgresStore({ pool, schema, queryTimeout: 200 })
    await store.hit('ip', MINUTE, T0)
    // Another session holds the counter's row: the store's UPDATE waits for it.
    const holder = await pool.connect()
    t.teardown(() => holder.release())
    await holder.query('BEGIN')
    await holder.query(`SELECT * FROM "${schema}".fastify_token_auth_counters WHERE key = 'ip' FOR UPDATE`)
    const started = Date.now()
    await t.rejects(store.hit('ip', MINUTE, T0), { ...UNAVAILABLE, cause: { message: 'no answer within 200 ms' } })
    t.ok(Date.now() - started < 1000)
    await holder.query('COMMIT')
    t.same(await store.hit('other', MINUTE, T0), { count: 1, ttlMs: MINUTE })
  })
})
