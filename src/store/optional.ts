/**
 * The server clients (`pg`, `@kurrent/kurrentdb-client`) are optional peer dependencies: a test suite
 * that only uses the in-memory host does not install them. They are loaded on first use of their
 * store, and a missing one is a one-line error naming the package to install.
 */
import { StoreError } from './types.js';

/** How a package is imported; injectable so tests can simulate a missing one. */
export type ModuleLoader = (name: string) => Promise<unknown>;

const nodeLoader: ModuleLoader = (name) => import(name);

/** The message for a store whose client package is not installed. */
export const missingPackageMessage = (scheme: string, name: string): string => `${scheme} needs the package ${name}: npm install ${name}`;

/** True when `error` says `name` itself (not one of its own dependencies) cannot be found. */
const isMissing = (error: unknown, name: string): boolean => {
  const e = error as NodeJS.ErrnoException | null;
  return (
    e !== null &&
    typeof e === 'object' &&
    (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(`'${name}'`)
  );
};

/** Imports the client package of a store (`scheme` as the user writes it, e.g. `kurrentdb://`). */
export const loadOptional = async <T>(name: string, scheme: string, loader: ModuleLoader = nodeLoader): Promise<T> => {
  try {
    return (await loader(name)) as T;
  } catch (error) {
    if (isMissing(error, name)) throw new StoreError(missingPackageMessage(scheme, name), 'EMISSINGPACKAGE');
    throw error;
  }
};
