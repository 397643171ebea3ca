/**
 * Every REST answer a test receives, checked against the /openapi.json the daemon serves: the
 * document is first checked against the OpenAPI 3.1 specification's own schema
 * (@seriousme/openapi-schema-validator), then each answer's status must be one the operation
 * lists and its body must fit that status's schema, compiled from the served document by ajv
 * (JSON Schema 2020-12, the dialect of OpenAPI 3.1). Nothing here reads the daemon's source: the
 * contract is what was served.
 *
 * The lookup: (1) the operation whose path template and method match the request; (2) none
 * matches: the gateway's 404 (no such path) or 405 (other methods) in the document's Error
 * schema; (3) the status's entry (or `default`); (4) its JSON schema against the body.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { Validator } from '@seriousme/openapi-schema-validator';

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: { Error: object } };
}

export class OpenApiAnswers {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
  private readonly compiled = new Map<object, ValidateFunction>();
  private readonly templates: Array<{ template: string; pattern: RegExp }>;

  private constructor(readonly document: Document) {
    this.templates = Object.keys(document.paths)
      .map((template) => ({ template, pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`) }))
      .sort((a, b) => Number(b.template.includes('{') === false) - Number(a.template.includes('{') === false)); // literal paths first
  }

  /** Checks the document itself against the OpenAPI specification's schema; throws naming the first problems. */
  static async fromDocument(document: unknown): Promise<OpenApiAnswers> {
    const result = await new Validator().validate(document as Record<string, unknown>);
    if (!result.valid) throw new Error(`/openapi.json is not a valid OpenAPI document: ${JSON.stringify(result.errors).slice(0, 2000)}`);
    return new OpenApiAnswers(document as Document);
  }

  private validator(schema: object): ValidateFunction {
    let validate = this.compiled.get(schema);
    if (!validate) this.compiled.set(schema, (validate = this.ajv.compile(schema)));
    return validate;
  }

  /** What is wrong with an answer, or undefined when it fits the document. */
  problem(method: string, url: string, status: number, body: unknown, text: string): string | undefined {
    const path = url.split('?')[0];
    const where = `${method} ${path} → ${status}`;
    const template = this.templates.find((t) => t.pattern.test(path))?.template; // (1)
    const operation = template ? this.document.paths[template][method.toLowerCase()] : undefined;
    if (!operation) {
      // (2) the gateway's own answers for what the document does not list
      const expected = template ? 405 : 404;
      if (status !== expected) return `${where}: no operation in the document, so only ${expected} is possible`;
      return this.fits(this.document.components.schemas.Error, body, where);
    }
    const response = operation.responses[String(status)] ?? operation.responses.default; // (3)
    if (!response) return `${where}: status ${status} is not listed for ${method} ${template} (it lists ${Object.keys(operation.responses).join(', ')})`;
    const schema = response.content?.['application/json']?.schema;
    if (!schema) return text === '' ? undefined : `${where}: the document lists no body, but one was sent`;
    return this.fits(schema, body, where); // (4)
  }

  private fits(schema: object, body: unknown, where: string): string | undefined {
    const validate = this.validator(schema);
    if (validate(body)) return undefined;
    return `${where}: the body does not fit the documented schema: ${this.ajv.errorsText(validate.errors, { dataVar: 'body' })}`;
  }
}
