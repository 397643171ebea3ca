/**
 * A body over --http-body-limit is answered 413 PAYLOAD_TOO_LARGE that every client reads — Node's
 * fetch and Python's urllib, with a Content-Length and chunked — instead of a reset connection:
 * the gateway reads the rest of the body before it answers and closes (rest-drain.ts).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
const CANARY = 'BODY-LIMIT-CANARY';
const limit = 64 * 1024;

/** 16 MiB of JSON that starts like a create and never fits. */
function bigBody(): Buffer {
  return Buffer.from(JSON.stringify({ name: 'big', value: CANARY + 'x'.repeat(16 * 1024 * 1024) }));
}

t.test('Node fetch reads the 413, with a Content-Length and chunked', async (t) => {
  const d = await startTestDaemon(t, { httpBodyLimit: limit });
  const url = `${d.daemon.httpUrl}/v1/admin/secrets`;
  const headers = { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/json' };
  const body = bigBody();
  for (let i = 0; i < 5; i++) {
    const answer = await fetch(url, { method: 'POST', headers, body });
    t.equal(answer.status, 413, `Content-Length #${i}`);
    const text = await answer.text();
    t.equal(JSON.parse(text).error.code, 'PAYLOAD_TOO_LARGE');
    t.notOk(text.includes(CANARY));
  }
  for (let i = 0; i < 3; i++) {
    let sent = 0;
    const chunked = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= body.length) return controller.close();
        controller.enqueue(body.subarray(sent, sent + 16 * 1024));
        sent += 16 * 1024;
      },
    });
    const answer = await fetch(url, { method: 'POST', headers, body: chunked, duplex: 'half' } as RequestInit);
    t.equal(answer.status, 413, `chunked #${i}`);
    t.equal(((await answer.json()) as { error: { code: string } }).error.code, 'PAYLOAD_TOO_LARGE');
  }
  t.notOk(d.logs.some((l) => l.includes(CANARY)), 'no value logged');
  // The gateway still answers afterwards.
  t.equal((await fetch(`${d.daemon.httpUrl}/healthz`)).status, 200);
});

t.test('Python urllib reads the 413, with a Content-Length and chunked', async (t) => {
  const d = await startTestDaemon(t, { httpBodyLimit: limit });
  const script = `
import json, sys, urllib.request, urllib.error
url, token, canary = sys.argv[1], sys.argv[2], sys.argv[3]
body = json.dumps({"name": "big", "value": canary + "x" * (16 * 1024 * 1024)}).encode()
def chunks():
    for i in range(0, len(body), 16384):
        yield body[i:i + 16384]
results = []
for i in range(8):
    chunked = i >= 5
    request = urllib.request.Request(url, data=chunks() if chunked else body, method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json", **({"Transfer-Encoding": "chunked"} if chunked else {})})
    try:
        urllib.request.urlopen(request, timeout=60)
        results.append("no error")
    except urllib.error.HTTPError as e:
        results.append(str(e.code) + " " + json.loads(e.read())["error"]["code"])
    except Exception as e:
        results.append(type(e).__name__)
print(json.dumps(results))
`;
  const { stdout } = await run('python3', ['-c', script, `${d.daemon.httpUrl}/v1/admin/secrets`, d.adminToken, CANARY], { timeout: 120_000 });
  const results = JSON.parse(stdout) as string[];
  t.same(results, Array(8).fill('413 PAYLOAD_TOO_LARGE'), 'every attempt read the 413 (5 with Content-Length, 3 chunked)');
  t.notOk(d.logs.some((l) => l.includes(CANARY)), 'no value logged');
});
