// The read API (docs/design.md §7) as the page calls it: the secret key from
// sessionStorage in `Authorization: Bearer`, and every refusal turned into an
// ApiError whose `kind` says what the page should do about it.

const STORAGE_KEY = 'lucent.secretKey';

/** The secret key, kept in sessionStorage only: it leaves with the tab. */
export const secretKey = {
  get() {
    try {
      return sessionStorage.getItem(STORAGE_KEY);
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(STORAGE_KEY, value);
  },
  clear() {
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // Storage unavailable: there is nothing to clear.
    }
  },
};

/**
 * kind: 'auth' (401: ask for the key again), 'scope' (403), 'not-found'
 * (404), 'rate' (429), 'network' (no answer), 'server' (anything else).
 */
export class ApiError extends Error {
  constructor(kind, message, status = null) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

/** GET `path` with the key; resolves with the Response when it is a 200. */
export async function apiGet(path, { signal } = {}) {
  const key = secretKey.get();
  if (!key) throw new ApiError('auth', 'Enter a secret key to read sessions.');
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError('network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (response.ok) return response;
  let reason = '';
  try {
    reason = (await response.json()).error ?? '';
  } catch {
    // Not our JSON (a proxy's page): the status says enough.
  }
  throw refusal(response, reason);
}

function refusal(response, reason) {
  const { status } = response;
  switch (status) {
    case 401:
      return new ApiError('auth', `The secret key was refused (${reason || 'unauthorized'}). Enter it again.`, status);
    case 403:
      return new ApiError('scope', 'This secret key may not read sessions: use a key with the read or admin scope.', status);
    case 404:
      return new ApiError('not-found', 'Session not found. It may have been erased, have expired, or belong to another organization.', status);
    case 429: {
      const after = response.headers.get('Retry-After');
      return new ApiError('rate', `Too many requests with this key: try again in ${after ?? 'a few'} seconds.`, status);
    }
    default:
      return new ApiError('server', `The server answered ${status}${reason ? `: ${reason}` : ''}.`, status);
  }
}

/** GET `path` and parse its JSON body. */
export async function apiJson(path, options) {
  const response = await apiGet(path, options);
  try {
    return await response.json();
  } catch {
    throw new ApiError('network', 'The answer was cut off. Try again.');
  }
}
