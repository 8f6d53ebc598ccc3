/* Single requests the scenarios make outside the measured loads, and the bodies they send. */

export const RIGHT = 'grant_type=password&username=user1&password=password1'
export const WRONG = 'grant_type=password&username=user1&password=not-the-password'
export const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

async function post (url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { ...FORM, ...headers }, body })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

/** A password login with the right credentials; throws unless it gets a token. */
export async function login (url: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const { status, json } = await post(`${url}/token`, RIGHT, headers)
  if (status !== 200 || typeof json.access_token !== 'string') throw new Error(`login failed: ${status} ${JSON.stringify(json)}`)
  return json
}

/**
 * A client address per request, never repeated in a run (X-Forwarded-For; the server trusts it).
 * The counter is shared by every scenario, as the addresses are unique over the whole run.
 */
let addressCounter = 0
export function nextAddress (): string {
  const n = ++addressCounter
  return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}
