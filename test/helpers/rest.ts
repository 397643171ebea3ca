/**
 * Calls the REST gateway of a test daemon over a real socket. Every answer is checked against
 * the /openapi.json that daemon serves (openapi-answers.ts): an answer that the document does not
 * describe fails the call, so every REST test keeps the published contract true.
 */
import { request as httpRequest } from 'node:http';
import type { TestDaemon } from './daemon.js';
import { OpenApiAnswers } from './openapi-answers.js';

export interface RestAnswer {
  status: number;
  headers: Headers;
  /** The parsed JSON body (undefined when there is none). */
  json: any;
  /** The raw body text, for checks that nothing leaked. */
  text: string;
}

export interface RestCallOptions {
  /** Defaults to the admin token; null sends none. */
  token?: string | null;
  /** Sent as JSON unless `raw` is given. */
  body?: unknown;
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** How to send the token: Authorization: Bearer (default) or X-API-Key. */
  scheme?: 'bearer' | 'x-api-key';
}

/** One checker per gateway URL, made from its document at the first answer. */
const checkers = new Map<string, Promise<OpenApiAnswers>>();

function documentOf(baseUrl: string): Promise<OpenApiAnswers> {
  let checker = checkers.get(baseUrl);
  if (!checker) {
    checker = send(baseUrl, 'GET', '/openapi.json', {}).then((answer) => {
      if (answer.status !== 200) throw new Error(`GET /openapi.json answered ${answer.status}`);
      return OpenApiAnswers.fromDocument(answer.json);
    });
    checkers.set(baseUrl, checker);
    checker.catch(() => checkers.delete(baseUrl)); // a daemon that was not up yet: ask again next time
  }
  return checker;
}

/** Each call on a new connection (node:http, no keep-alive), so a daemon restart never meets a stale socket. */
export function restClient(d: TestDaemon) {
  return async function rest(method: string, path: string, options: RestCallOptions = {}): Promise<RestAnswer> {
    const token = options.token === undefined ? d.adminToken : options.token;
    const baseUrl = d.daemon.httpUrl!;
    const answer = await send(baseUrl, method, path, { ...options, token });
    const problem = (await documentOf(baseUrl)).problem(method, path, answer.status, answer.json, answer.text);
    if (problem) throw new Error(`the answer does not match /openapi.json: ${problem}`);
    return answer;
  };
}

function send(baseUrl: string, method: string, path: string, options: RestCallOptions): Promise<RestAnswer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const token = options.token;
  if (token !== null && token !== undefined) {
    if (options.scheme === 'x-api-key') headers['x-api-key'] = token;
    else headers.authorization = `Bearer ${token}`;
  }
  let body: string | Buffer | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise<RestAnswer>((resolve, reject) => {
    const request = httpRequest(`${baseUrl}${path}`, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const answerHeaders = new Headers();
        for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) answerHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: response.statusCode!, headers: answerHeaders, json, text });
      });
      response.on('error', reject);
    });
    request.on('error', (error) => reject(new Error(`${method} ${path}: ${error.message}`)));
    request.end(body);
  });
}

export const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
