// The console's only way to the platform: GraphQL at /graphql (and the REST exports for downloads), always with the
// bearer token from session storage. Nothing here caches data across tokens.
import { session } from "./session";

/** A GraphQL error with its contract code (VALIDATION, CONFLICT, NOT_FOUND, FORBIDDEN, UNSCHEDULABLE, PRECONDITION …). */
export class ApiError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface GqlBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
  extensions?: Record<string, unknown>;
}

/** The data and the response's extensions, where the API says what a field's value cannot (a timeline's archive boundary). */
export interface GqlAnswer<T> {
  data: T;
  extensions: Record<string, unknown>;
}

function authHeaders(): Record<string, string> {
  const token = session.token();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function gql<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
  return (await gqlAnswer<T>(query, variables)).data;
}

export async function gqlAnswer<T>(query: string, variables?: Record<string, unknown>): Promise<GqlAnswer<T>> {
  let response: Response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json, application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
      credentials: "omit", // the token is the only credential; no cookie travels, none is set
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError("NETWORK", `Kraud did not answer: ${(e as Error).message}`);
  }
  let body: GqlBody<T>;
  try {
    body = (await response.json()) as GqlBody<T>;
  } catch {
    throw new ApiError(`HTTP_${response.status}`, `Kraud answered ${response.status} ${response.statusText}`);
  }
  if (body.errors?.length) {
    const first = body.errors[0];
    const code = first.extensions?.code ?? `HTTP_${response.status}`;
    if (code === "UNAUTHENTICATED") session.expired();
    throw new ApiError(code, body.errors.map((e) => e.message).join("; "));
  }
  if (!body.data) throw new ApiError(`HTTP_${response.status}`, `Kraud answered ${response.status} without data`);
  return { data: body.data, extensions: body.extensions ?? {} };
}

/** A REST download (audit exports): the token goes as a header, never in the URL (which would end up in logs and history). */
export async function download(path: string): Promise<{ blob: Blob; headers: Headers }> {
  const response = await fetch(path, { headers: authHeaders(), credentials: "omit", cache: "no-store" });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = `HTTP_${response.status}`;
    try {
      const body = (await response.json()) as { error?: string; message?: string };
      if (body.message) message = body.message;
      if (body.error) code = body.error;
    } catch {
      /* not JSON: the status says it */
    }
    throw new ApiError(code, message);
  }
  return { blob: await response.blob(), headers: response.headers };
}

/** A streamed REST response read line by line (follow mode of logs); resolves when the stream ends or is aborted. */
export async function streamLines(path: string, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
  const response = await fetch(path, { headers: { Accept: "application/x-ndjson", ...authHeaders() }, credentials: "omit", cache: "no-store", signal });
  if (!response.ok || !response.body) throw new ApiError(`HTTP_${response.status}`, `${response.status} ${response.statusText}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim()) onLine(line);
      }
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}
