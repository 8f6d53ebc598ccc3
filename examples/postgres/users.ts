/*
 * The users table of the PostgreSQL example: its migration, the one query the plugin's
 * findUser needs, and the writes of the account routes. Every value is a query parameter;
 * the only text put into SQL is the schema name, checked against a strict pattern and quoted.
 */
import { readFileSync } from 'node:fs'
import type pg from 'pg'
import { StoreUnavailableError, type UserRecord } from 'fastify-token-auth'

export type Pool = pg.Pool

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** The qualified, quoted name of the users table in `schema`. */
export function usersTable (schema: string): string {
  if (!IDENTIFIER.test(schema)) throw new Error(`schema "${schema}": lower-case letters, digits and "_" only`)
  return `"${schema}".users`
}

/**
 * The migration: run at start-up, before the server listens, never at request time.
 *
 * `username_normalized` is the name as the database compares it (see `normalizeUsername`):
 * unique there, so "Zoë", "ZOË" and "Ｚｏë" (full-width) are one account, and the lookup at
 * login is one indexed query. `username` keeps the name as it was typed, for display.
 */
export function usersMigration (schema: string): string {
  const table = usersTable(schema)
  return `
    CREATE SCHEMA IF NOT EXISTS "${schema}";
    CREATE TABLE IF NOT EXISTS ${table} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      username text NOT NULL,
      username_normalized text NOT NULL UNIQUE,
      password_hash text NOT NULL,
      scopes text[] NOT NULL DEFAULT '{profile}',
      disabled boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );`
}

/** Names no sign-up may take, normalised: "admin" is ADMIN_PASSWORD's. */
export const RESERVED_USERNAMES: ReadonlySet<string> = new Set(['admin'])

/** Usernames: 3 to 32 letters, digits, ".", "_" or "-" once normalised. */
const USERNAME = /^[\p{L}\p{N}._-]{3,32}$/u

/**
 * The form a username is compared in: NFKC (compatibility forms such as full-width letters and
 * ligatures become the plain ones), then lower-cased. `undefined` for a name that is not
 * allowed, which also keeps NUL (that PostgreSQL text cannot hold) and invisible characters out
 * of every query.
 */
export function normalizeUsername (username: string): string | undefined {
  const normalized = username.normalize('NFKC').toLowerCase()
  return USERNAME.test(normalized) ? normalized : undefined
}

/** A database failure, answered 503 with Retry-After: the client may try again; it did nothing wrong. */
function unavailable (cause: unknown): never {
  throw new StoreUnavailableError({ cause })
}

interface UserRow {
  id: string
  username: string
  password_hash: string
  scopes: string[]
  disabled: boolean
}

/** What the plugin and the routes need of the users table. */
export interface Users {
  /** The plugin's findUser: one query on the unique index. */
  find: (username: string) => Promise<UserRecord | null>
  /** By id (the tokens' `sub`). */
  byId: (id: string) => Promise<UserRecord | null>
  /** Creates a user; `false` when the (normalised) name is taken. */
  create: (username: string, passwordHash: string, scopes?: readonly string[]) => Promise<boolean>
  /** Stores a new hash; with `onlyIfHash`, only while the stored hash is still that one. Whether it did. */
  setPasswordHash: (id: string, passwordHash: string, onlyIfHash?: string) => Promise<boolean>
  /** Disables a user; their id, or `undefined` when there is no such user. */
  disable: (username: string) => Promise<string | undefined>
}

export function createUsers (pool: Pool, schema: string): Users {
  const table = usersTable(schema)
  const record = (row: UserRow | undefined): UserRecord | null => row === undefined
    ? null
    : { id: row.id, username: row.username, passwordHash: row.password_hash, scopes: row.scopes, disabled: row.disabled }
  const columns = 'id::text AS id, username, password_hash, scopes, disabled'

  return {
    async find (username) {
      const normalized = normalizeUsername(username)
      if (normalized === undefined) return null
      const { rows } = await pool.query<UserRow>(`SELECT ${columns} FROM ${table} WHERE username_normalized = $1`, [normalized]).catch(unavailable)
      return record(rows[0])
    },
    async byId (id) {
      if (!/^[1-9][0-9]{0,18}$/.test(id)) return null
      const { rows } = await pool.query<UserRow>(`SELECT ${columns} FROM ${table} WHERE id = $1`, [id]).catch(unavailable)
      return record(rows[0])
    },
    async create (username, passwordHash, scopes = ['profile']) {
      // The unique index decides, atomically: two sign-ups racing for one name cannot both win.
      const { rowCount } = await pool.query(
        `INSERT INTO ${table} (username, username_normalized, password_hash, scopes) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username_normalized) DO NOTHING`,
        [username.normalize('NFC'), normalizeUsername(username), passwordHash, scopes]).catch(unavailable)
      return rowCount === 1
    },
    async setPasswordHash (id, passwordHash, onlyIfHash) {
      const { rowCount } = await pool.query(
        `UPDATE ${table} SET password_hash = $2, updated_at = now() WHERE id = $1 AND ($3::text IS NULL OR password_hash = $3)`,
        [id, passwordHash, onlyIfHash ?? null]).catch(unavailable)
      return rowCount === 1
    },
    async disable (username) {
      const normalized = normalizeUsername(username)
      if (normalized === undefined) return undefined
      const { rows } = await pool.query<{ id: string }>(
        `UPDATE ${table} SET disabled = true, updated_at = now() WHERE username_normalized = $1 RETURNING id::text AS id`, [normalized]).catch(unavailable)
      return rows[0]?.id
    }
  }
}

/** The shipped list of common passwords, lower-case, one a line; `#` starts a comment. */
export function loadCommonPasswords (file = new URL('./common-passwords.txt', import.meta.url)): Set<string> {
  return new Set(readFileSync(file, 'utf8').split('\n').filter((line) => line !== '' && !line.startsWith('#')))
}

/** Passwords under this many characters are refused (OWASP ASVS 5.0 6.2.1). */
export const MIN_PASSWORD_LENGTH = 8

/**
 * Why a new password is refused, or `undefined` when it is fine. OWASP ASVS 5.0 6.2: at least 8
 * characters, as long as the plugin accepts at login (`maxLength`, measured as the plugin
 * measures it), any characters, no composition rules (6.2.5), not a common password (6.2.4),
 * not the username (6.2.11).
 */
export function passwordProblem (password: string, username: string, maxLength: number, common: Set<string>): string | undefined {
  const nfc = password.normalize('NFC')
  if ([...nfc].length < MIN_PASSWORD_LENGTH) return `The password must be at least ${MIN_PASSWORD_LENGTH} characters long`
  // The plugin refuses a longer one at login before hashing it: never let one be set.
  if (password.length > maxLength) return `The password must be at most ${maxLength} characters long`
  const compared = password.normalize('NFKC').toLowerCase()
  if (common.has(compared)) return 'This password is too common; choose another one'
  if (compared === normalizeUsername(username)) return 'The password must not be the username'
  return undefined
}
