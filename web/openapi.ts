// The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json. Written out by hand next to the
// routes of web/api-routes.ts (and checked against them by test/web-api.test.ts).
const criterion = {
  type: 'object',
  required: ['status', 'reason'],
  properties: { status: { enum: ['ok', 'ng', 'unknown', 'na'] }, reason: { type: 'string' }, detail: { type: 'string' } },
};
const diagnosis = {
  type: 'object',
  required: ['id', 'source', 'domain', 'observedAt', 'verdict', 'criteria'],
  properties: {
    id: { type: 'string' },
    source: { enum: ['scan', 'test-mail'] },
    domain: { type: 'string' },
    observedAt: { type: 'string', format: 'date-time' },
    verdict: { enum: ['safe', 'review', 'needs_improvement', 'danger', 'incomplete'] },
    verdictReasons: { type: 'object' },
    criteria: {
      type: 'object',
      properties: Object.fromEntries(['open_relay', 'spf', 'dkim', 'tls_receive', 'tls_send', 'reverse_dns', 'dnssec', 'dnsbl'].map((c) => [c, { $ref: '#/components/schemas/Criterion' }])),
    },
    findings: { type: 'object' },
    rulesVersion: { type: 'integer' },
    judgedAt: { type: 'string', format: 'date-time' },
    testMail: { type: ['object', 'null'] },
    provenance: { type: ['string', 'null'], enum: ['requested', 'authenticated', 'unverified', null], description: 'test mails: how sure it is the domain sent it' },
    resultMail: { type: ['object', 'null'] },
  },
};
const error = { type: 'object', required: ['error'], properties: { error: { type: 'string' } } };
const err = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const json = (schema: unknown, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const keyed = { security: [{ apiKey: [] }], responses: { 401: err('no API key'), 403: err('the key is not valid') } };

export function openApiDocument(serverUrl: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'mailcensus API',
      version: '1',
      description: 'Mail-server security diagnoses (MSchecker\'s criteria): test-mail requests and their results (public), and survey runs and diagnoses (operator API keys).',
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An operator key from MAILCENSUS_WEB_API_KEYS' } },
      schemas: {
        Criterion: criterion,
        Diagnosis: diagnosis,
        Error: error,
        RunProgress: {
          type: 'object',
          required: ['runId', 'survey', 'state', 'total', 'done', 'unknowns'],
          properties: {
            runId: { type: 'integer' }, survey: { type: 'string' }, state: { enum: ['queued', 'running', 'cancelled', 'done', 'failed'] },
            total: { type: 'integer' }, done: { type: 'integer' }, optedOut: { type: 'integer' },
            unknowns: { type: 'integer', description: 'diagnoses so far whose verdict is incomplete' },
            verdicts: { type: 'object', additionalProperties: { type: 'integer' } },
            percent: { type: 'string' }, rate: { type: 'string' }, ratePerSecond: { type: 'number' },
            eta: { type: 'string' }, etaSeconds: { type: ['number', 'null'] },
            createdAt: { type: 'string', format: 'date-time' }, startedAt: { type: ['string', 'null'] }, finishedAt: { type: ['string', 'null'] },
          },
        },
        TestMailRequest: {
          type: 'object',
          required: ['token', 'domain', 'address', 'resultUrl', 'statusUrl'],
          properties: {
            token: { type: 'string', pattern: '^[a-z2-7]{26}$', description: '128 random bits; the only key to the result' },
            domain: { type: 'string' }, address: { type: 'string', description: 'mail any message from the domain to this address' },
            resultUrl: { type: 'string' }, statusUrl: { type: 'string' },
          },
        },
      },
    },
    paths: {
      '/api/v1/test-mail/requests': {
        post: {
          summary: 'Request a test-mail address for a domain',
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['domain'], properties: { domain: { type: 'string', description: 'a domain or an address at it' } } } } } },
          responses: { 201: json({ $ref: '#/components/schemas/TestMailRequest' }, 'created'), 400: err('not a domain'), 429: err('rate limited') },
        },
      },
      '/api/v1/test-mail/requests/{token}': {
        get: {
          summary: 'The state and, when done, the diagnosis of a test-mail request',
          parameters: [{ name: 'token', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            200: json({
              type: 'object',
              required: ['state'],
              properties: { state: { enum: ['waiting', 'received', 'done', 'not_diagnosed'] }, notDiagnosed: { type: ['string', 'null'], description: 'why the mail was not diagnosed: domain_daily_cap, opted_out' }, domain: { type: 'string' }, address: { type: 'string' }, mail: { type: ['object', 'null'] }, diagnosis: { oneOf: [{ $ref: '#/components/schemas/Diagnosis' }, { type: 'null' }] } },
            }),
            404: err('no such request'),
            429: err('rate limited'),
          },
        },
      },
      '/api/v1/domains/{domain}/latest': {
        get: {
          summary: 'The latest diagnosis of a domain',
          ...keyed,
          parameters: [
            { name: 'domain', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'source', in: 'query', schema: { enum: ['scan', 'test-mail'] } },
            { name: 'survey', in: 'query', schema: { type: 'string' } },
          ],
          responses: { ...keyed.responses, 200: json({ $ref: '#/components/schemas/Diagnosis' }), 404: err('no diagnosis') },
        },
      },
      '/api/v1/runs': {
        post: {
          summary: 'Start a run of a survey',
          ...keyed,
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['survey'], properties: { survey: { type: 'string' } } } } } },
          responses: { ...keyed.responses, 201: json({ type: 'object', properties: { runId: { type: 'integer' }, survey: { type: 'string' }, total: { type: 'integer' }, optedOut: { type: 'integer' } } }, 'created'), 400: err('no such survey') },
        },
      },
      '/api/v1/runs/{id}': {
        get: {
          summary: 'Progress of a run: done, total, rate, ETA, unknowns',
          ...keyed,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
          responses: { ...keyed.responses, 200: json({ $ref: '#/components/schemas/RunProgress' }), 400: err('no such run') },
        },
      },
      '/api/v1/runs/{id}/diagnoses': {
        get: {
          summary: 'The diagnoses of a run, in pages (follow `next` as `after`)',
          ...keyed,
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'integer' } },
            { name: 'after', in: 'query', schema: { type: 'string' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 5000, default: 1000 } },
          ],
          responses: {
            ...keyed.responses,
            200: json({ type: 'object', properties: { runId: { type: 'integer' }, diagnoses: { type: 'array', items: { type: 'object' } }, next: { type: ['string', 'null'] } } }),
          },
        },
      },
    },
  };
}
