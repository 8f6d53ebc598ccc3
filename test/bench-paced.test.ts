import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { paced } from '../bench/harness/paced.js'

/*
 * The bench's fixed-rate login flood (bench/harness/paced.ts) must arrive at the rate it names,
 * spread over each second. autocannon's `overallRate` lets every connection go at the top of each
 * second, so the server got a second's logins in one burst, and, with each connection waiting for
 * its answer, far fewer of them than the rate named.
 */
t.test('a paced load arrives at its rate, spread evenly, while answers are slow', async (t) => {
  const arrivals: number[] = []
  // Answers take 300 ms, as a login waiting for a hashing slot does: connections stay busy.
  const server = createServer((request, response) => {
    arrivals.push(performance.now())
    request.resume()
    setTimeout(() => { response.end('{}') }, 300)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo

  const rate = 200
  const result = await paced(undefined, {
    url: `http://127.0.0.1:${port}/token`, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b', rate, seconds: 1.5, connections: 100
  })

  t.same(result.statuses, { 200: 300 }, 'every request sent and answered')
  t.equal(result.errors, 0)
  t.equal(arrivals.length, 300)
  // Request i is due at i / rate s: arrivals span the whole 1.5 s, and no 50 ms holds much more
  // than its share of 10 (a burst at the top of a second would put 100 or more in one; the bound
  // leaves room for a worker held up for 200 ms by a busy machine, which then catches up).
  const first = arrivals[0] as number
  t.ok((arrivals.at(-1) as number) - first > 1400, `arrivals spread over the run (${Math.round((arrivals.at(-1) as number) - first)} ms)`)
  let most = 0
  for (const start of arrivals) most = Math.max(most, arrivals.filter((at) => at >= start && at < start + 50).length)
  t.ok(most <= 50, `at most 50 requests in any 50 ms (${most})`)
})
